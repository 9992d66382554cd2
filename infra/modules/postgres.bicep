// Azure Database for PostgreSQL - Flexible Server, version 17, with the pgvector (VECTOR) and
// pg_trgm (PG_TRGM) extensions allow-listed through the `azure.extensions` server parameter.
// `pg-mcp migrate` then creates pg-mcp's own objects (roles pgmcp_owner and pgmcp_app, schemas
// pgmcp and pgmcp_private), and `pg-mcp seed` the retail demo (pgvector, schema, policies,
// data), connected as the administrator below.
//
// Networking: this template uses public access restricted by firewall rules, with the
// "Allow Azure services" rule (0.0.0.0) so Container Apps can connect. That rule admits any
// Azure-hosted client (authentication and TLS still apply). For production, prefer private
// access (VNet integration): a subnet delegated to Microsoft.DBforPostgreSQL/flexibleServers
// and a private DNS zone (properties.network.delegatedSubnetResourceId and
// privateDnsZoneArmResourceId, publicNetworkAccess 'Disabled'), with the Container Apps
// environment in the same VNet. TLS is required (require_secure_transport stays on); clients
// connect with sslmode=require or stricter.

@description('Server name (globally unique, lowercase letters, digits and hyphens).')
param name string

@description('Azure region.')
param location string

@description('Tags applied to the server.')
param tags object = {}

@description('PostgreSQL major version.')
param version string = '17'

@description('Administrator login (not azure_superuser, admin, administrator, root, guest, public, nor pg_*).')
param administratorLogin string

@description('Administrator password: 8-128 characters from three of upper case, lower case, digits, symbols.')
@secure()
param administratorPassword string

@description('Compute SKU, e.g. Standard_B1ms (Burstable) or Standard_D2ds_v5 (GeneralPurpose).')
param skuName string = 'Standard_B1ms'

@allowed([
  'Burstable'
  'GeneralPurpose'
  'MemoryOptimized'
])
param skuTier string = 'Burstable'

@description('Storage size in GiB.')
param storageSizeGB int = 32

@description('Database created for pg-mcp.')
param databaseName string = 'pgmcp'

@description('Add the firewall rule that admits Azure services (needed by Container Apps without VNet integration).')
param allowAzureServices bool = true

@description('Optional public IPv4 address of an operator workstation allowed to connect (empty: none).')
param clientIpAddress string = ''

resource server 'Microsoft.DBforPostgreSQL/flexibleServers@2024-08-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: skuName
    tier: skuTier
  }
  properties: {
    version: version
    createMode: 'Default'
    administratorLogin: administratorLogin
    administratorLoginPassword: administratorPassword
    authConfig: {
      activeDirectoryAuth: 'Disabled'
      passwordAuth: 'Enabled'
    }
    storage: {
      storageSizeGB: storageSizeGB
      autoGrow: 'Enabled'
    }
    backup: {
      backupRetentionDays: 7
      geoRedundantBackup: 'Disabled'
    }
    highAvailability: {
      mode: 'Disabled'
    }
    network: {
      publicNetworkAccess: 'Enabled'
    }
  }
}

// Extensions a non-superuser administrator may CREATE (comma separated, upper case).
resource allowedExtensions 'Microsoft.DBforPostgreSQL/flexibleServers/configurations@2024-08-01' = {
  parent: server
  name: 'azure.extensions'
  properties: {
    value: 'VECTOR,PG_TRGM'
    source: 'user-override'
  }
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2024-08-01' = {
  parent: server
  name: databaseName
  properties: {
    charset: 'UTF8'
    collation: 'en_US.utf8'
  }
  dependsOn: [
    allowedExtensions
  ]
}

resource allowAzure 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = if (allowAzureServices) {
  parent: server
  name: 'AllowAllAzureServicesAndResourcesWithinAzureIps'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
  dependsOn: [
    database
  ]
}

resource allowClient 'Microsoft.DBforPostgreSQL/flexibleServers/firewallRules@2024-08-01' = if (!empty(clientIpAddress)) {
  parent: server
  name: 'operator-workstation'
  properties: {
    startIpAddress: clientIpAddress
    endIpAddress: clientIpAddress
  }
  dependsOn: [
    allowAzure
  ]
}

output name string = server.name
output fqdn string = server.properties.fullyQualifiedDomainName
output databaseName string = database.name
