// pg-mcp on Azure: a resource group with
//   Log Analytics            logs of the Container Apps environment
//   PostgreSQL Flexible 17   VECTOR and PG_TRGM allow-listed
//   Azure OpenAI             text-embedding-3-small for semantic search
//   Key Vault + identity     every secret; the app reads them as Key Vault references
//   Container Apps           the pg-mcp app (JWT auth, HTTPS ingress) and the setup job
//
// Deploy with infra/deploy.sh (it passes the secrets from environment variables through a
// temporary parameters file), or with `az deployment sub create` and a parameters file whose
// secure values are Key Vault references (see infra/main.parameters.example.json).
targetScope = 'subscription'

// ---------------------------------------------------------------------------------------------
// General
// ---------------------------------------------------------------------------------------------

@description('Azure region of the resources.')
param location string

@description('Short lowercase prefix of every resource name: 3-12 letters or digits, starting with a letter.')
@minLength(3)
@maxLength(12)
param prefix string

@description('Resource group to create or update.')
param resourceGroupName string = 'rg-${prefix}'

@description('Tags applied to every resource.')
param tags object = {
  project: 'pg-mcp'
  managedBy: 'bicep'
}

// ---------------------------------------------------------------------------------------------
// Container image
// ---------------------------------------------------------------------------------------------

@description('pg-mcp container image, e.g. myregistry.azurecr.io/pg-mcp:1.0.0 (built from the repository Dockerfile).')
param image string

@description('Registry server pulled with the managed identity (grant it AcrPull); empty for a public image.')
param registryServer string = ''

// ---------------------------------------------------------------------------------------------
// Secrets: never defaults, never outputs. Pass them from Key Vault references in a parameters
// file, or let deploy.sh pass them from environment variables.
// ---------------------------------------------------------------------------------------------

@description('PostgreSQL administrator password (8-128 characters, three of: upper, lower, digit, symbol).')
@secure()
@minLength(8)
param postgresAdminPassword string

@description('Password of the application role pgmcp_app.')
@secure()
@minLength(16)
param appPassword string

@description('Tenant signing key (PG_MCP_TENANT_SIGNING_KEY), at least 32 characters.')
@secure()
@minLength(32)
param tenantSigningKey string

@description('Admin bearer token (PG_MCP_ADMIN_TOKEN) for /connections and /query_history.')
@secure()
@minLength(32)
param adminToken string

@description('HMAC secret for HS* JWTs (PG_MCP_JWT_SECRET); empty when a public key is used.')
@secure()
param jwtSecret string = ''

@description('PEM public key for RS*/ES*/PS*/EdDSA JWTs (mounted as PG_MCP_JWT_PUBLIC_KEY_FILE); empty when a secret is used.')
@secure()
param jwtPublicKeyPem string = ''

// ---------------------------------------------------------------------------------------------
// Authentication (PG_MCP_AUTH_MODE=jwt)
// ---------------------------------------------------------------------------------------------

@description('Required JWT issuer (iss).')
param jwtIssuer string

@description('Required JWT audience (aud).')
param jwtAudience string

@description('Accepted JWT algorithms, comma separated.')
param jwtAlgorithms string = 'RS256'

@description('JWT claim holding the caller\'s RLS user id (UUID).')
param jwtTenantClaim string = 'rls_user_id'

@description('Extra Host names accepted on /mcp (custom domains); the app FQDN is always allowed.')
param extraAllowedHosts array = []

// ---------------------------------------------------------------------------------------------
// Database
// ---------------------------------------------------------------------------------------------

@description('PostgreSQL administrator login.')
param postgresAdminLogin string = 'pgmcpadmin'

@description('PostgreSQL major version.')
param postgresVersion string = '17'

@description('PostgreSQL compute SKU and tier.')
param postgresSkuName string = 'Standard_B1ms'
@allowed([
  'Burstable'
  'GeneralPurpose'
  'MemoryOptimized'
])
param postgresSkuTier string = 'Burstable'

@description('PostgreSQL storage in GiB.')
param postgresStorageSizeGB int = 32

@description('Database name.')
param databaseName string = 'pgmcp'

@description('Public IPv4 of an operator workstation allowed through the PostgreSQL firewall (empty: none).')
param clientIpAddress string = ''

@description('PG_MCP_ALLOW_OBSERVABLE_SESSIONS: the flexible server has no superuser, so `pg-mcp migrate` cannot close pg_stat_activity and friends to the app role and the server refuses to start. true serves anyway: tenants can then read each other\'s SQL text. Read the README security section first.')
param allowObservableSessions bool = false

// ---------------------------------------------------------------------------------------------
// Embeddings and scaling
// ---------------------------------------------------------------------------------------------

@description('Region of the Azure OpenAI account (text-embedding-3-small must be offered there).')
param openAiLocation string = location

@description('Embeddings deployment capacity (thousands of tokens per minute).')
param embeddingsCapacity int = 50

@description('Replica bounds of the app.')
param minReplicas int = 1
param maxReplicas int = 5

@description('Concurrent HTTP requests per replica before scaling out.')
param concurrentRequests int = 20

@description('Database connections per replica.')
param poolSize int = 5

@description('Demo data scale loaded by the setup job; 0 (default) loads none.')
param seedScale string = '0'

// ---------------------------------------------------------------------------------------------

var suffix = uniqueString(subscription().id, resourceGroupName, prefix)

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: resourceGroupName
  location: location
  tags: tags
}

module logs 'modules/loganalytics.bicep' = {
  name: '${prefix}-loganalytics'
  scope: rg
  params: {
    name: '${prefix}-logs'
    location: location
    tags: tags
  }
}

module postgres 'modules/postgres.bicep' = {
  name: '${prefix}-postgres'
  scope: rg
  params: {
    name: '${prefix}-pg-${suffix}'
    location: location
    tags: tags
    version: postgresVersion
    administratorLogin: postgresAdminLogin
    administratorPassword: postgresAdminPassword
    skuName: postgresSkuName
    skuTier: postgresSkuTier
    storageSizeGB: postgresStorageSizeGB
    databaseName: databaseName
    clientIpAddress: clientIpAddress
  }
}

module openai 'modules/openai.bicep' = {
  name: '${prefix}-openai'
  scope: rg
  params: {
    name: '${prefix}-oai-${suffix}'
    location: openAiLocation
    tags: tags
    capacity: embeddingsCapacity
  }
}

module keyvault 'modules/keyvault.bicep' = {
  name: '${prefix}-keyvault'
  scope: rg
  params: {
    name: take('${prefix}kv${suffix}', 24)
    identityName: '${prefix}-identity'
    location: location
    tags: tags
    postgresFqdn: postgres.outputs.fqdn
    databaseName: postgres.outputs.databaseName
    postgresAdminLogin: postgresAdminLogin
    postgresAdminPassword: postgresAdminPassword
    appPassword: appPassword
    tenantSigningKey: tenantSigningKey
    adminToken: adminToken
    jwtSecret: jwtSecret
    jwtPublicKeyPem: jwtPublicKeyPem
    openAiAccountName: openai.outputs.name
  }
}

module containerapp 'modules/containerapp.bicep' = {
  name: '${prefix}-containerapp'
  scope: rg
  params: {
    prefix: prefix
    location: location
    tags: tags
    image: image
    registryServer: registryServer
    identityId: keyvault.outputs.identityId
    logAnalyticsWorkspaceName: logs.outputs.name
    secretUris: keyvault.outputs.secretUris
    jwtIssuer: jwtIssuer
    jwtAudience: jwtAudience
    jwtAlgorithms: jwtAlgorithms
    jwtTenantClaim: jwtTenantClaim
    extraAllowedHosts: extraAllowedHosts
    openAiEndpoint: openai.outputs.endpoint
    openAiDeployment: openai.outputs.deploymentName
    minReplicas: minReplicas
    maxReplicas: maxReplicas
    concurrentRequests: concurrentRequests
    poolSize: poolSize
    seedScale: seedScale
    allowObservableSessions: allowObservableSessions
  }
}

output resourceGroupName string = rg.name
output appName string = containerapp.outputs.appName
output appFqdn string = containerapp.outputs.fqdn
output mcpUrl string = containerapp.outputs.mcpUrl
output setupJobName string = containerapp.outputs.setupJobName
output keyVaultName string = keyvault.outputs.name
output identityPrincipalId string = keyvault.outputs.identityPrincipalId
output postgresFqdn string = postgres.outputs.fqdn
output openAiEndpoint string = openai.outputs.endpoint
