// The whole system in one subscription-scope deployment (azd conventions):
// resource group, monitoring, one user-assigned identity, storage, Event Hubs,
// Cosmos DB, Azure SQL, the Flex Consumption Function App and API Management in
// front of it. Names shared with the code (hub, consumer groups, Cosmos database and
// containers, blob containers) come from shared/topology.json; nothing here holds a
// secret and no output carries one.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd AZURE_ENV_NAME); seeds the resource names and the azd-env-name tag.')
param environmentName string

// Regions that offer the Flex Consumption plan. Microsoft documents how to list them rather
// than a fixed list: `az functionapp list-flexconsumption-locations`, see
// https://learn.microsoft.com/azure/azure-functions/flex-consumption-how-to#view-currently-supported-regions
// These are the public regions Microsoft's Flex Consumption azd quickstart template allows
// (github.com/Azure-Samples/functions-quickstart-python-http-azd, infra/main.bicep), without
// its canary region eastus2euap. Check the command's output before relying on a region.
@minLength(1)
@description('Azure region of every resource; it must offer Flex Consumption and the API Management tier chosen.')
@allowed([
  'australiaeast'
  'australiasoutheast'
  'brazilsouth'
  'canadacentral'
  'centralindia'
  'centralus'
  'eastasia'
  'eastus'
  'eastus2'
  'francecentral'
  'germanywestcentral'
  'italynorth'
  'japaneast'
  'koreacentral'
  'northcentralus'
  'northeurope'
  'norwayeast'
  'southafricanorth'
  'southcentralus'
  'southeastasia'
  'southindia'
  'spaincentral'
  'swedencentral'
  'uaenorth'
  'uksouth'
  'ukwest'
  'westcentralus'
  'westeurope'
  'westus'
  'westus2'
  'westus3'
])
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

@description('Object id of the deploying user or CI principal (azd AZURE_PRINCIPAL_ID); it gets data access for local runs and is the default SQL Entra admin. Empty for none.')
param principalId string = ''

@description('Kind of principal principalId is (azd AZURE_PRINCIPAL_TYPE).')
@allowed([
  'User'
  'ServicePrincipal'
])
param principalType string = 'User'

@description('Name of the resource group; empty derives rg-<environmentName>.')
param resourceGroupName string = ''

@description('Object id of the Microsoft Entra admin of the SQL server; empty uses principalId.')
param sqlAdminObjectId string = ''

@description('Login (display) name recorded for the SQL Entra admin, e.g. a UPN or group name.')
param sqlAdminLogin string = 'orders-sql-admin'

@description('Kind of principal the SQL Entra admin is; empty derives it from principalType.')
@allowed([
  ''
  'User'
  'Group'
  'Application'
])
param sqlAdminPrincipalType string = ''

@description('Resource id of a user-assigned identity already granted Microsoft Graph read permissions, to be the SQL server identity (lets a service principal deployer create the app user without a tenant administrator per environment); empty gives the server a system-assigned identity.')
param sqlServerIdentityId string = ''

@description('Name of the write-side SQL database.')
param sqlDatabaseName string = 'orders'

@description('SQL database SKU name: GP_S_Gen5 (General Purpose serverless), GP_Gen5 (General Purpose provisioned) or BC_Gen5 (Business Critical provisioned); the tier and hardware family follow from it.')
@allowed([
  'GP_S_Gen5'
  'GP_Gen5'
  'BC_Gen5'
])
param sqlDatabaseSkuName string = 'GP_S_Gen5'

@description('Maximum vCores of the SQL database (raised to the smallest size of the SKU: 2 for provisioned SKUs).')
param sqlDatabaseMaxVCores int = 1

@description('Public IPv4 address allowed through the SQL firewall so postprovision can run from a workstation; empty for none.')
param sqlClientIpAddress string = ''

@description('Cosmos DB serverless capacity mode.')
param cosmosServerless bool = true

// No Consumption: it lacks rate-limit-by-key, and the API is limited per caller (token subject).
@description('API Management tier; every one listed has rate-limit-by-key (Consumption does not).')
@allowed([
  'Developer'
  'BasicV2'
  'StandardV2'
  'Basic'
  'Standard'
  'Premium'
])
param apimSku string = 'BasicV2'

@description('E-mail address of the API publisher.')
param apimPublisherEmail string = 'noreply@example.com'

@description('Display name of the API publisher.')
param apimPublisherName string = 'Orders'

@description('Origins the API Management CORS policy allows.')
param apimCorsAllowedOrigins array = [
  '*'
]

@description('Calls allowed per caller per minute at API Management: per token subject (oid, else sub), or per client IP address on the anonymous operations.')
param apimRateLimitCallsPerMinute int = 300

@description('Client id of the API\'s Microsoft Entra app registration (azd AUTH_API_CLIENT_ID, set by infra/scripts/preprovision.sh). Empty fails the deployment: run the hook first.')
param authApiClientId string = ''

@description('Application ID URI of that registration, e.g. api://<client id> (azd AUTH_API_APP_ID_URI, set by the hook).')
param authApiAppIdUri string = ''

@description('Partitions of the domain-events hub: the most instances that consume it in parallel per projection (Flex Consumption runs at most one per partition). Standard tier cannot change it after creation, so size it for growth; the capacity math is in the README.')
@minValue(1)
@maxValue(32)
param eventHubPartitionCount int = 16

@description('Throughput units of the Event Hubs namespace (1 MB/s or 1,000 events/s in each).')
@minValue(1)
@maxValue(20)
param eventHubCapacity int = 1

@description('E-mail address the alerts (infra/app/observability.bicep) notify; empty: they fire in the portal only (azd: ALERT_EMAIL).')
param alertEmail string = ''

@description('Upper bound of Function App instances.')
param functionMaximumInstanceCount int = 100

@description('Memory per Function App instance in MB.')
param functionInstanceMemoryMB int = 2048

var abbrs = loadJsonContent('abbreviations.json')
var topology = loadJsonContent('../shared/topology.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}
var functionAppName = '${abbrs.webSitesFunctions}api-${resourceToken}'
var deploymentContainerName = 'app-package-${take(functionAppName, 32)}-${take(resourceToken, 7)}'
var sqlAdminSid = empty(sqlAdminObjectId) ? principalId : sqlAdminObjectId
// Microsoft Entra v2.0 endpoints of this tenant (the app registration asks for v2 tokens), from
// the cloud's login endpoint rather than a literal host.
var authIssuer = '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
var authJwksUri = '${environment().authentication.loginEndpoint}${tenant().tenantId}/discovery/v2.0/keys'
var authOpenIdConfigUrl = '${authIssuer}/.well-known/openid-configuration'
// Literal branches only: Bicep types a ternary as the union of its branches without flow
// narrowing, so `!empty(p) ? p : ...` would keep '' from sqlAdminPrincipalType's list, and the
// sql module's adminPrincipalType (User | Group | Application) would refuse it at compile time.
var sqlAdminType = sqlAdminPrincipalType == 'Group' ? 'Group' : (sqlAdminPrincipalType == 'Application' || (empty(sqlAdminPrincipalType) && principalType == 'ServicePrincipal') ? 'Application' : 'User')

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
  location: location
  tags: tags
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
    applicationInsightsName: '${abbrs.insightsComponents}${resourceToken}'
    location: location
    tags: tags
  }
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: '${abbrs.managedIdentityUserAssignedIdentities}api-${resourceToken}'
    location: location
    tags: tags
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: '${abbrs.storageStorageAccounts}${resourceToken}'
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
  }
}

module eventHubs 'app/eventhubs.bicep' = {
  name: 'eventhubs'
  scope: rg
  params: {
    name: '${abbrs.eventHubNamespaces}${resourceToken}'
    location: location
    tags: tags
    partitionCount: eventHubPartitionCount
    capacity: eventHubCapacity
  }
}

module cosmos 'app/cosmos.bicep' = {
  name: 'cosmos'
  scope: rg
  params: {
    name: '${abbrs.documentDBDatabaseAccounts}${resourceToken}'
    location: location
    tags: tags
    serverless: cosmosServerless
    appPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
  }
}

module sql 'app/sql.bicep' = {
  name: 'sql'
  scope: rg
  params: {
    name: '${abbrs.sqlServers}${resourceToken}'
    location: location
    tags: tags
    databaseName: sqlDatabaseName
    adminObjectId: sqlAdminSid
    adminLogin: sqlAdminLogin
    adminPrincipalType: sqlAdminType
    databaseSkuName: sqlDatabaseSkuName
    databaseMaxVCores: sqlDatabaseMaxVCores
    clientIpAddress: sqlClientIpAddress
    serverIdentityId: sqlServerIdentityId
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    appPrincipalId: identity.outputs.principalId
    userPrincipalId: principalId
    userPrincipalType: principalType
    storageAccountName: storage.outputs.name
    eventHubsNamespaceName: eventHubs.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
  }
}

module functionApp 'app/function.bicep' = {
  name: 'function'
  scope: rg
  params: {
    name: functionAppName
    planName: '${abbrs.webServerFarms}${resourceToken}'
    location: location
    tags: tags
    serviceName: 'api'
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    storageBlobEndpoint: storage.outputs.blobEndpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    eventHubsFullyQualifiedNamespace: eventHubs.outputs.fullyQualifiedNamespace
    eventHubName: eventHubs.outputs.eventHubName
    cosmosEndpoint: cosmos.outputs.endpoint
    cosmosDatabaseName: cosmos.outputs.databaseName
    sqlServerFullyQualifiedDomainName: sql.outputs.fullyQualifiedDomainName
    sqlDatabaseName: sql.outputs.databaseName
    maximumInstanceCount: functionMaximumInstanceCount
    authIssuer: authIssuer
    authJwksUri: authJwksUri
    authApiClientId: authApiClientId
    authApiAppIdUri: authApiAppIdUri
    instanceMemoryMB: functionInstanceMemoryMB
  }
}

module apim 'app/apim.bicep' = {
  name: 'apim'
  scope: rg
  params: {
    name: '${abbrs.apiManagementService}${resourceToken}'
    location: location
    tags: tags
    sku: apimSku
    publisherEmail: apimPublisherEmail
    publisherName: apimPublisherName
    functionAppName: functionApp.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    corsAllowedOrigins: apimCorsAllowedOrigins
    rateLimitCalls: apimRateLimitCallsPerMinute
    rateLimitPeriodSeconds: 60
    authOpenIdConfigUrl: authOpenIdConfigUrl
    authIssuer: authIssuer
    authApiClientId: authApiClientId
    authApiAppIdUri: authApiAppIdUri
  }
}

module observability 'app/observability.bicep' = {
  name: 'observability'
  scope: rg
  params: {
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    location: location
    tags: tags
    actionGroupName: '${abbrs.insightsActionGroups}${resourceToken}'
    alertNamePrefix: '${abbrs.insightsScheduledQueryRules}${resourceToken}'
    alertEmail: alertEmail
  }
}

// Outputs are names and endpoints only (azd writes them to .azure/<env>/.env and hands
// them to the postprovision hook). The ones named like app settings let a developer
// point a local run at the Azure resources.
output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_SUBSCRIPTION_ID string = subscription().subscriptionId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output SERVICE_API_NAME string = functionApp.outputs.name
output SERVICE_API_URI string = 'https://${functionApp.outputs.defaultHostName}'
output AZURE_FUNCTION_IDENTITY_NAME string = identity.outputs.name
output AZURE_FUNCTION_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output AZURE_FUNCTION_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.applicationInsightsName
output AZURE_STORAGE_ACCOUNT_NAME string = storage.outputs.name
output AZURE_SQL_SERVER_NAME string = sql.outputs.name
output AZURE_SQL_SERVER_IDENTITY_PRINCIPAL_ID string = sql.outputs.identityPrincipalId
output SQL_SERVER string = sql.outputs.fullyQualifiedDomainName
output SQL_DATABASE string = sql.outputs.databaseName
output AZURE_COSMOS_ACCOUNT_NAME string = cosmos.outputs.name
output COSMOS_ENDPOINT string = cosmos.outputs.endpoint
output COSMOS_DATABASE string = cosmos.outputs.databaseName
output AZURE_EVENTHUBS_NAMESPACE string = eventHubs.outputs.name
output EventHubConnection__fullyQualifiedNamespace string = eventHubs.outputs.fullyQualifiedNamespace
output EVENTHUB_NAME string = eventHubs.outputs.eventHubName
output EVENTHUB_CONSUMER_GROUPS array = topology.eventHub.consumerGroups
output DeadLetterStorage__blobServiceUri string = storage.outputs.blobEndpoint
output AZURE_APIM_NAME string = apim.outputs.name
output AZURE_APIM_GATEWAY_URL string = apim.outputs.gatewayUrl
output AZURE_APIM_API_URL string = apim.outputs.apiUrl
// How to ask for a token (az account get-access-token --resource $AUTH_API_APP_ID_URI) and what
// the app checks; the same names as its settings, so a local run can accept Azure tokens.
output AUTH_API_CLIENT_ID string = authApiClientId
output AUTH_API_APP_ID_URI string = authApiAppIdUri
output AUTH_ISSUER string = authIssuer
output AUTH_AUDIENCE string = functionApp.outputs.authAudience
output AUTH_JWKS_URI string = authJwksUri
