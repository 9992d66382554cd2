// Key Vault holding every pg-mcp secret, and the user-assigned managed identity through which
// the Container App and the setup job read them (Key Vault references: the secret values are
// never part of the Container App's definition, and a new secret version is picked up without
// redeploying the template).
//
// Secrets written here:
//   database-url          postgres://pgmcp_app:...@<server>:5432/<db>?sslmode=require  (serve)
//   admin-database-url    postgres://<admin>:...@<server>:5432/<db>?sslmode=require    (setup job only)
//   app-password          password of pgmcp_app, set by `pg-mcp migrate`
//   tenant-signing-key    PG_MCP_TENANT_SIGNING_KEY, same value for migrate and serve
//   admin-token           PG_MCP_ADMIN_TOKEN for /connections and /query_history
//   embeddings-api-key    the Azure OpenAI account's key (read with listKeys)
//   jwt-secret            PG_MCP_JWT_SECRET (only when given)
//   jwt-public-key        PEM mounted as PG_MCP_JWT_PUBLIC_KEY_FILE (only when given)

@description('Key Vault name (3-24 characters, globally unique).')
@minLength(3)
@maxLength(24)
param name string

@description('Name of the user-assigned identity created for the Container App and the setup job.')
param identityName string

@description('Azure region.')
param location string

@description('Tags applied to the vault and the identity.')
param tags object = {}

@description('FQDN of the PostgreSQL server.')
param postgresFqdn string

@description('Database name.')
param databaseName string

@description('PostgreSQL administrator login.')
param postgresAdminLogin string

@secure()
param postgresAdminPassword string

@secure()
param appPassword string

@secure()
@minLength(32)
param tenantSigningKey string

@secure()
@minLength(32)
param adminToken string

@secure()
param jwtSecret string = ''

@secure()
param jwtPublicKeyPem string = ''

@description('Azure OpenAI account (same resource group) whose key is stored as embeddings-api-key.')
param openAiAccountName string

// Built-in role "Key Vault Secrets User": read secret values.
var keyVaultSecretsUserRoleId = '4633458b-17de-408a-b874-0445c86b69e6'
// Percent-encode the passwords: they are placed inside connection URLs.
var databaseUrl = 'postgres://pgmcp_app:${uriComponent(appPassword)}@${postgresFqdn}:5432/${databaseName}?sslmode=require'
var adminDatabaseUrl = 'postgres://${uriComponent(postgresAdminLogin)}:${uriComponent(postgresAdminPassword)}@${postgresFqdn}:5432/${databaseName}?sslmode=require'

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: identityName
  location: location
  tags: tags
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    // Lets a parameters file reference these secrets in later deployments.
    enabledForTemplateDeployment: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: vault
  name: guid(vault.id, identity.id, keyVaultSecretsUserRoleId)
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsUserRoleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

resource openAi 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: openAiAccountName
}

resource databaseUrlSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'database-url'
  properties: {
    value: databaseUrl
    contentType: 'text/plain'
  }
}

resource adminDatabaseUrlSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'admin-database-url'
  properties: {
    value: adminDatabaseUrl
    contentType: 'text/plain'
  }
}

resource appPasswordSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'app-password'
  properties: {
    value: appPassword
  }
}

resource tenantSigningKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'tenant-signing-key'
  properties: {
    value: tenantSigningKey
  }
}

resource adminTokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'admin-token'
  properties: {
    value: adminToken
  }
}

resource embeddingsKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'embeddings-api-key'
  properties: {
    value: openAi.listKeys().key1
  }
}

resource jwtSecretSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(jwtSecret)) {
  parent: vault
  name: 'jwt-secret'
  properties: {
    value: jwtSecret
  }
}

resource jwtPublicKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(jwtPublicKeyPem)) {
  parent: vault
  name: 'jwt-public-key'
  properties: {
    value: jwtPublicKeyPem
    contentType: 'application/x-pem-file'
  }
}

output name string = vault.name
output uri string = vault.properties.vaultUri
output identityId string = identity.id
output identityClientId string = identity.properties.clientId
output identityPrincipalId string = identity.properties.principalId
// Versionless secret URIs (not the values): Container Apps resolves the latest version.
output secretUris object = {
  databaseUrl: databaseUrlSecret.properties.secretUri
  adminDatabaseUrl: adminDatabaseUrlSecret.properties.secretUri
  appPassword: appPasswordSecret.properties.secretUri
  tenantSigningKey: tenantSigningKeySecret.properties.secretUri
  adminToken: adminTokenSecret.properties.secretUri
  embeddingsApiKey: embeddingsKeySecret.properties.secretUri
  jwtSecret: empty(jwtSecret) ? '' : jwtSecretSecret.properties.secretUri
  jwtPublicKey: empty(jwtPublicKeyPem) ? '' : jwtPublicKeySecret.properties.secretUri
}
