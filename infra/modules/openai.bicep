// Azure OpenAI account with a text-embedding-3-small deployment, used by pg-mcp's semantic
// product search (PG_MCP_EMBEDDINGS_PROVIDER=azure) and by `pg-mcp embed`.
// The API key is not an output: modules/keyvault.bicep reads it with listKeys() and stores it
// as a Key Vault secret.

@description('Account name; also its custom subdomain (globally unique).')
param name string

@description('Azure region where the embeddings model is offered with the Standard SKU (e.g. eastus, eastus2, swedencentral).')
param location string

@description('Tags applied to the account.')
param tags object = {}

@description('Deployment name (PG_MCP_AZURE_OPENAI_DEPLOYMENT).')
param deploymentName string = 'text-embedding-3-small'

@description('Embeddings model and version.')
param modelName string = 'text-embedding-3-small'
param modelVersion string = '1'

@description('Capacity in thousands of tokens per minute.')
param capacity int = 50

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  name: name
  location: location
  tags: tags
  kind: 'OpenAI'
  sku: {
    name: 'S0'
  }
  properties: {
    customSubDomainName: name
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
    }
  }
}

resource embeddings 'Microsoft.CognitiveServices/accounts/deployments@2024-10-01' = {
  parent: account
  name: deploymentName
  sku: {
    name: 'Standard'
    capacity: capacity
  }
  properties: {
    model: {
      format: 'OpenAI'
      name: modelName
      version: modelVersion
    }
    versionUpgradeOption: 'OnceNewDefaultVersionAvailable'
  }
}

output name string = account.name
output endpoint string = account.properties.endpoint
output deploymentName string = embeddings.name
