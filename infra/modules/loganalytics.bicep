// Log Analytics workspace: receives the Container Apps environment's console and system logs
// (pg-mcp writes JSON logs to stderr, so they arrive as structured records).

@description('Workspace name.')
param name string

@description('Azure region.')
param location string

@description('Tags applied to the workspace.')
param tags object = {}

@description('Days the logs are kept.')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
    features: {
      enableLogAccessUsingOnlyResourcePermissions: true
    }
  }
}

output name string = workspace.name
output id string = workspace.id
output customerId string = workspace.properties.customerId
