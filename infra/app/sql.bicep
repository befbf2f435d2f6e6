// Azure SQL logical server (Microsoft Entra authentication only: no SQL logins, no
// password anywhere) and the write-side database. The app identity's contained user is
// created after provisioning by infra/scripts/postprovision.sh, which runs as the
// Entra admin set here.
//
// The server has an identity because of that step: when the admin running
// `CREATE USER ... FROM EXTERNAL PROVIDER` is a service principal (a CI deployer), Azure SQL
// looks the new user up in Microsoft Graph with the server identity, which must exist and hold
// Graph read permissions (User.Read.All, GroupMember.Read.All, Application.Read.All, or the
// Directory Readers role). A user admin is looked up with the user's own delegated rights.
// Granting those permissions needs a tenant administrator, so it is not done here: see
// infra/README.md ("SQL users and a service principal deployer").

@description('Name of the logical SQL server.')
param name string

@description('Azure region of the server.')
param location string

@description('Tags applied to the server and database.')
param tags object

@description('Name of the database.')
param databaseName string

@description('Object id (sid) of the Microsoft Entra administrator: a user, group or service principal.')
param adminObjectId string

@description('Display/login name recorded for the Microsoft Entra administrator.')
param adminLogin string

@description('Kind of principal the administrator is.')
@allowed([
  'User'
  'Group'
  'Application'
])
param adminPrincipalType string = 'User'

@description('Database SKU name: GP_S_Gen5 (General Purpose serverless: auto-pause, billed per second), GP_Gen5 (General Purpose provisioned) or BC_Gen5 (Business Critical provisioned).')
@allowed([
  'GP_S_Gen5'
  'GP_Gen5'
  'BC_Gen5'
])
param databaseSkuName string = 'GP_S_Gen5'

@description('Maximum vCores of the database (serverless scales between 0.5 and this); raised to the smallest size of the SKU.')
param databaseMaxVCores int = 1

@description('Minutes of inactivity before a serverless database pauses (-1 disables auto-pause, minimum 15).')
param autoPauseDelay int = 60

@description('Optional public IPv4 address (a developer workstation) allowed through the firewall; empty for none.')
param clientIpAddress string = ''

@description('Resource id of a user-assigned identity, already granted the Microsoft Graph read permissions, to be the server identity; empty gives the server a system-assigned identity.')
param serverIdentityId string = ''

// Tier, hardware family and smallest vCore count of each allowed SKU name (vCore purchasing
// model), so that name, tier and family can never disagree whatever the caller picks.
var skus = {
  GP_S_Gen5: {
    tier: 'GeneralPurpose'
    family: 'Gen5'
    serverless: true
    minVCores: 1
  }
  GP_Gen5: {
    tier: 'GeneralPurpose'
    family: 'Gen5'
    serverless: false
    minVCores: 2
  }
  BC_Gen5: {
    tier: 'BusinessCritical'
    family: 'Gen5'
    serverless: false
    minVCores: 2
  }
}
var databaseSku = skus[databaseSkuName]

resource server 'Microsoft.Sql/servers@2023-08-01' = {
  name: name
  location: location
  tags: tags
  identity: empty(serverIdentityId) ? {
    type: 'SystemAssigned'
  } : {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${serverIdentityId}': {}
    }
  }
  properties: {
    version: '12.0'
    primaryUserAssignedIdentityId: empty(serverIdentityId) ? null : serverIdentityId
    minimalTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    administrators: {
      administratorType: 'ActiveDirectory'
      azureADOnlyAuthentication: true
      login: adminLogin
      sid: adminObjectId
      principalType: adminPrincipalType
      tenantId: tenant().tenantId
    }
  }
}

resource database 'Microsoft.Sql/servers/databases@2023-08-01' = {
  parent: server
  name: databaseName
  location: location
  tags: tags
  sku: {
    name: databaseSkuName
    tier: databaseSku.tier
    family: databaseSku.family
    capacity: max(databaseMaxVCores, databaseSku.minVCores)
  }
  properties: {
    autoPauseDelay: databaseSku.serverless ? autoPauseDelay : null
    minCapacity: databaseSku.serverless ? json('0.5') : null
    requestedBackupStorageRedundancy: 'Local'
    zoneRedundant: false
  }
}

// 0.0.0.0-0.0.0.0 is the documented "Allow Azure services and resources to access this
// server" rule: the Flex Consumption app has no fixed outbound address.
resource allowAzureServices 'Microsoft.Sql/servers/firewallRules@2023-08-01' = {
  parent: server
  name: 'AllowAllWindowsAzureIps'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
}

resource allowClientIp 'Microsoft.Sql/servers/firewallRules@2023-08-01' = if (!empty(clientIpAddress)) {
  parent: server
  name: 'AllowDeployerClientIp'
  properties: {
    startIpAddress: clientIpAddress
    endIpAddress: clientIpAddress
  }
}

output name string = server.name
// The principal (object) id a tenant administrator grants the Graph permissions to; empty
// when a user-assigned identity (granted beforehand) is the server identity.
output identityPrincipalId string = empty(serverIdentityId) ? server.identity.principalId : ''
output fullyQualifiedDomainName string = server.properties.fullyQualifiedDomainName
output databaseName string = database.name
