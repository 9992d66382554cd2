// Container Apps environment, the pg-mcp app, and the one-shot setup job.
//
//   app    `pg-mcp serve` behind the environment's HTTPS ingress on port 8000; JWT auth;
//          HTTP-concurrency scaling between minReplicas and maxReplicas; liveness and
//          readiness probes on /health/live and /health/ready.
//   job    manual trigger: `pg-mcp migrate`, optional `pg-mcp seed`, `pg-mcp embed`, connected
//          as the PostgreSQL administrator (the app never gets that URL).
//
// Every secret is a Key Vault reference resolved through the user-assigned identity.

@description('Prefix of the resource names.')
param prefix string

@description('Azure region.')
param location string

@description('Tags applied to every resource.')
param tags object = {}

@description('Container image, e.g. myregistry.azurecr.io/pg-mcp:1.0.0')
param image string

@description('Registry to log in to with the identity (it needs AcrPull there); empty for a public image.')
param registryServer string = ''

@description('User-assigned identity (resource id) allowed to read the Key Vault secrets.')
param identityId string

@description('Log Analytics workspace (same resource group) receiving the logs.')
param logAnalyticsWorkspaceName string

@description('Versionless Key Vault secret URIs (output secretUris of keyvault.bicep).')
param secretUris object

@description('JWT issuer (iss) and audience (aud) the server requires.')
param jwtIssuer string
param jwtAudience string

@description('Accepted JWT algorithms, comma separated (HS* with jwt-secret, RS*/ES*/PS*/EdDSA with jwt-public-key).')
param jwtAlgorithms string = 'RS256'

@description('Claim holding the caller\'s RLS user id.')
param jwtTenantClaim string = 'rls_user_id'

@description('Extra Host names accepted on /mcp besides the app\'s own FQDN (custom domains).')
param extraAllowedHosts array = []

@description('Azure OpenAI endpoint, deployment, API version, model and dimensions.')
param openAiEndpoint string
param openAiDeployment string
param openAiApiVersion string = '2024-10-21'
param embeddingsModel string = 'text-embedding-3-small'
param embeddingsDimensions int = 1536

@description('Replica bounds and the concurrent requests per replica that trigger a scale-out.')
@minValue(0)
param minReplicas int = 1
@maxValue(300)
param maxReplicas int = 5
param concurrentRequests int = 20

@description('Connections per replica (keep maxReplicas x poolSize under the server\'s max_connections).')
param poolSize int = 5

@description('Demo data scale for the setup job (`pg-mcp seed --scale`); 0 skips seeding.')
param seedScale string = '0'

@description('PG_MCP_LOG_LEVEL of the app.')
param logLevel string = 'info'

@description('PG_MCP_ALLOW_OBSERVABLE_SESSIONS (see main.bicep): serve although the app role can read other sessions.')
param allowObservableSessions bool = false

@description('Probe paths: liveness must not depend on the database (a restart does not fix it); readiness does.')
param livenessPath string = '/health/live'
param readinessPath string = '/health/ready'

var appName = '${prefix}-app'
var jobName = '${prefix}-setup'
var hasJwtSecret = !empty(secretUris.jwtSecret)
var hasJwtPublicKey = !empty(secretUris.jwtPublicKey)
var jwtKeyDir = '/etc/pg-mcp/jwt'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: logAnalyticsWorkspaceName
}

resource managedEnv 'Microsoft.App/managedEnvironments@2024-03-01' = {
  name: '${prefix}-env'
  location: location
  tags: tags
  properties: {
    appLogsConfiguration: {
      destination: 'log-analytics'
      logAnalyticsConfiguration: {
        customerId: workspace.properties.customerId
        sharedKey: workspace.listKeys().primarySharedKey
      }
    }
  }
}

// The FQDN the ingress gives the app; clients send it as Host, so it must be allowed.
var appFqdn = '${appName}.${managedEnv.properties.defaultDomain}'

var registries = empty(registryServer) ? [] : [
  {
    server: registryServer
    identity: identityId
  }
]

var kvSecret = {
  databaseUrl: {
    name: 'database-url'
    keyVaultUrl: secretUris.databaseUrl
    identity: identityId
  }
  adminDatabaseUrl: {
    name: 'admin-database-url'
    keyVaultUrl: secretUris.adminDatabaseUrl
    identity: identityId
  }
  appPassword: {
    name: 'app-password'
    keyVaultUrl: secretUris.appPassword
    identity: identityId
  }
  tenantSigningKey: {
    name: 'tenant-signing-key'
    keyVaultUrl: secretUris.tenantSigningKey
    identity: identityId
  }
  adminToken: {
    name: 'admin-token'
    keyVaultUrl: secretUris.adminToken
    identity: identityId
  }
  embeddingsApiKey: {
    name: 'embeddings-api-key'
    keyVaultUrl: secretUris.embeddingsApiKey
    identity: identityId
  }
  jwtSecret: {
    name: 'jwt-secret'
    keyVaultUrl: secretUris.jwtSecret
    identity: identityId
  }
  jwtPublicKey: {
    name: 'jwt-public-key'
    keyVaultUrl: secretUris.jwtPublicKey
    identity: identityId
  }
}

var embeddingsEnv = [
  {
    name: 'PG_MCP_EMBEDDINGS_PROVIDER'
    value: 'azure'
  }
  {
    name: 'PG_MCP_EMBEDDINGS_MODEL'
    value: embeddingsModel
  }
  {
    name: 'PG_MCP_EMBEDDINGS_DIMENSIONS'
    value: string(embeddingsDimensions)
  }
  {
    name: 'PG_MCP_AZURE_OPENAI_ENDPOINT'
    value: openAiEndpoint
  }
  {
    name: 'PG_MCP_AZURE_OPENAI_DEPLOYMENT'
    value: openAiDeployment
  }
  {
    name: 'PG_MCP_AZURE_OPENAI_API_VERSION'
    value: openAiApiVersion
  }
  {
    name: 'PG_MCP_EMBEDDINGS_API_KEY'
    secretRef: 'embeddings-api-key'
  }
]

var appEnv = concat([
  {
    name: 'PG_MCP_BIND'
    value: '0.0.0.0:8000'
  }
  {
    name: 'PG_MCP_ALLOWED_HOSTS'
    value: join(concat([appFqdn], extraAllowedHosts), ',')
  }
  {
    name: 'PG_MCP_DATABASE_URL'
    secretRef: 'database-url'
  }
  {
    name: 'PG_MCP_TENANT_SIGNING_KEY'
    secretRef: 'tenant-signing-key'
  }
  {
    name: 'PG_MCP_READ_ONLY'
    value: 'true'
  }
  {
    name: 'PG_MCP_POOL_SIZE'
    value: string(poolSize)
  }
  {
    name: 'PG_MCP_ALLOW_OBSERVABLE_SESSIONS'
    value: string(allowObservableSessions)
  }
  {
    name: 'PG_MCP_AUTH_MODE'
    value: 'jwt'
  }
  {
    name: 'PG_MCP_JWT_ISSUER'
    value: jwtIssuer
  }
  {
    name: 'PG_MCP_JWT_AUDIENCE'
    value: jwtAudience
  }
  {
    name: 'PG_MCP_JWT_ALGORITHMS'
    value: jwtAlgorithms
  }
  {
    name: 'PG_MCP_JWT_TENANT_CLAIM'
    value: jwtTenantClaim
  }
  {
    name: 'PG_MCP_ADMIN_TOKEN'
    secretRef: 'admin-token'
  }
  {
    name: 'PG_MCP_LOG_FORMAT'
    value: 'json'
  }
  {
    name: 'PG_MCP_LOG_LEVEL'
    value: logLevel
  }
  {
    name: 'OTEL_SERVICE_NAME'
    value: 'pg-mcp'
  }
], embeddingsEnv, hasJwtSecret ? [
  {
    name: 'PG_MCP_JWT_SECRET'
    secretRef: 'jwt-secret'
  }
] : [], hasJwtPublicKey ? [
  {
    name: 'PG_MCP_JWT_PUBLIC_KEY_FILE'
    value: '${jwtKeyDir}/public.pem'
  }
] : [])

var appSecrets = concat([
  kvSecret.databaseUrl
  kvSecret.tenantSigningKey
  kvSecret.adminToken
  kvSecret.embeddingsApiKey
], hasJwtSecret ? [
  kvSecret.jwtSecret
] : [], hasJwtPublicKey ? [
  kvSecret.jwtPublicKey
] : [])

resource app 'Microsoft.App/containerApps@2024-03-01' = {
  name: appName
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: managedEnv.id
    configuration: {
      // Single revision: required by sticky sessions, and a new image replaces the old one.
      activeRevisionsMode: 'Single'
      ingress: {
        external: true
        targetPort: 8000
        transport: 'http'
        allowInsecure: false
        // Only for PG_MCP_STATELESS_HTTP=false: MCP sessions (Mcp-Session-Id) live in one
        // replica's memory, so keep a client on it. Stateless mode (the default) needs none.
        stickySessions: {
          affinity: 'sticky'
        }
        traffic: [
          {
            latestRevision: true
            weight: 100
          }
        ]
      }
      registries: registries
      secrets: appSecrets
    }
    template: {
      containers: [
        {
          name: 'pg-mcp'
          image: image
          args: [
            'serve'
          ]
          env: appEnv
          resources: {
            cpu: json('0.5')
            memory: '1Gi'
          }
          probes: [
            {
              type: 'Startup'
              httpGet: {
                path: livenessPath
                port: 8000
                scheme: 'HTTP'
              }
              periodSeconds: 5
              timeoutSeconds: 3
              failureThreshold: 24
            }
            {
              type: 'Liveness'
              httpGet: {
                path: livenessPath
                port: 8000
                scheme: 'HTTP'
              }
              periodSeconds: 15
              timeoutSeconds: 3
              failureThreshold: 3
            }
            {
              type: 'Readiness'
              httpGet: {
                path: readinessPath
                port: 8000
                scheme: 'HTTP'
              }
              periodSeconds: 10
              timeoutSeconds: 5
              failureThreshold: 3
            }
          ]
          volumeMounts: hasJwtPublicKey ? [
            {
              volumeName: 'jwt'
              mountPath: jwtKeyDir
            }
          ] : []
        }
      ]
      volumes: hasJwtPublicKey ? [
        {
          name: 'jwt'
          storageType: 'Secret'
          secrets: [
            {
              secretRef: 'jwt-public-key'
              path: 'public.pem'
            }
          ]
        }
      ] : []
      scale: {
        minReplicas: minReplicas
        maxReplicas: maxReplicas
        rules: [
          {
            name: 'http-concurrency'
            http: {
              metadata: {
                concurrentRequests: string(concurrentRequests)
              }
            }
          }
        ]
      }
    }
  }
}

// migrate -> seed (optional) -> embed. Start it with `az containerapp job start` (deploy.sh
// --run-setup does) after every deployment that changes the migrations or the signing key.
var setupScript = 'set -e; pg-mcp migrate; if [ "${seedScale}" != "0" ]; then pg-mcp seed --scale "${seedScale}"; fi; pg-mcp embed || echo "setup: embeddings skipped" >&2'

resource setupJob 'Microsoft.App/jobs@2024-03-01' = {
  name: jobName
  location: location
  tags: tags
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    environmentId: managedEnv.id
    configuration: {
      triggerType: 'Manual'
      replicaTimeout: 3600
      replicaRetryLimit: 0
      manualTriggerConfig: {
        parallelism: 1
        replicaCompletionCount: 1
      }
      registries: registries
      secrets: [
        kvSecret.adminDatabaseUrl
        kvSecret.appPassword
        kvSecret.tenantSigningKey
        kvSecret.embeddingsApiKey
      ]
    }
    template: {
      containers: [
        {
          name: 'setup'
          image: image
          command: [
            '/bin/sh'
            '-c'
          ]
          args: [
            setupScript
          ]
          env: concat([
            {
              name: 'PG_MCP_ADMIN_DATABASE_URL'
              secretRef: 'admin-database-url'
            }
            {
              name: 'PG_MCP_APP_PASSWORD'
              secretRef: 'app-password'
            }
            {
              name: 'PG_MCP_TENANT_SIGNING_KEY'
              secretRef: 'tenant-signing-key'
            }
            {
              name: 'PG_MCP_LOG_FORMAT'
              value: 'json'
            }
          ], embeddingsEnv)
          resources: {
            cpu: json('1.0')
            memory: '2Gi'
          }
        }
      ]
    }
  }
}

output appName string = app.name
output fqdn string = appFqdn
output mcpUrl string = 'https://${appFqdn}/mcp'
output setupJobName string = setupJob.name
output environmentName string = managedEnv.name
