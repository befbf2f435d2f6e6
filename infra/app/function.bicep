// Flex Consumption (FC1) plan and the Python 3.11 Function App. Every connection is
// identity-based through the one user-assigned identity: no key or connection string
// is stored in an app setting. The app settings below must cover every setting that
// shared/config.py marks azure="required" (tests/test_infra_function_app.py checks it). Callers are
// authenticated by the app itself (AUTH_* settings: Microsoft Entra tokens for the API's app
// registration), not by Functions keys.

@description('Name of the Function App.')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Azure region of the plan and app.')
param location string

@description('Tags applied to the plan.')
param tags object

@description('azd service name; azd deploys the code to the resource carrying this tag.')
param serviceName string = 'api'

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity (selects it for every identity-based connection).')
param identityClientId string

@description('Name of the host storage account (AzureWebJobsStorage, deployment package).')
param storageAccountName string

@description('Blob endpoint of the storage account, e.g. https://<account>.blob.core.windows.net/.')
param storageBlobEndpoint string

@description('Blob container that holds the deployment package.')
param deploymentContainerName string

@description('Name of the Application Insights component.')
param applicationInsightsName string

@description('Event Hubs namespace host name, e.g. <namespace>.servicebus.windows.net.')
param eventHubsFullyQualifiedNamespace string

@description('Name of the event hub carrying domain events.')
param eventHubName string

@description('Cosmos DB account endpoint.')
param cosmosEndpoint string

@description('Cosmos DB database of the read models.')
param cosmosDatabaseName string

@description('Azure SQL server host name, e.g. <server>.database.windows.net.')
param sqlServerFullyQualifiedDomainName string

@description('Azure SQL database name.')
param sqlDatabaseName string

@description('Python version of the Flex Consumption runtime.')
@allowed([
  '3.10'
  '3.11'
  '3.12'
])
param pythonVersion string = '3.11'

@description('Memory of each instance in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Upper bound of instances the plan scales out to.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Issuer of the access tokens the app accepts: https://<login endpoint>/<tenant id>/v2.0.')
param authIssuer string

@description('Where that issuer publishes its signing keys (JWKS).')
param authJwksUri string

// A GUID: the length check makes a deployment without the preprovision hook's value fail
// instead of configuring an audience no token carries.
@description('Client id of the API\'s app registration: the audience of v2 access tokens.')
@minLength(36)
@maxLength(36)
param authApiClientId string

@description('Application ID URI of the API\'s app registration: the audience of tokens asked for by that URI.')
@minLength(1)
param authApiAppIdUri string

var authAudience = '${authApiAppIdUri},${authApiClientId}'

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    name: 'FC1'
    tier: 'FlexConsumption'
  }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: union(tags, {
    'azd-service-name': serviceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      http20Enabled: true
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storageBlobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'python'
        version: pythonVersion
      }
    }
  }
}

// Identity-based connections: "<prefix>__credential" = managedidentity and
// "<prefix>__clientId" pick the user-assigned identity (Functions identity-based
// connection settings); the Azure SDK clients in the code use AZURE_CLIENT_ID.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: {
    AzureWebJobsStorage__accountName: storageAccountName
    AzureWebJobsStorage__credential: 'managedidentity'
    AzureWebJobsStorage__clientId: identityClientId
    AZURE_CLIENT_ID: identityClientId
    APPLICATIONINSIGHTS_CONNECTION_STRING: applicationInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
    EVENT_TRANSPORT: 'eventhubs'
    EVENTHUB_NAME: eventHubName
    EventHubConnection__fullyQualifiedNamespace: eventHubsFullyQualifiedNamespace
    EventHubConnection__credential: 'managedidentity'
    EventHubConnection__clientId: identityClientId
    COSMOS_ENDPOINT: cosmosEndpoint
    COSMOS_DATABASE: cosmosDatabaseName
    SQL_SERVER: sqlServerFullyQualifiedDomainName
    SQL_DATABASE: sqlDatabaseName
    DeadLetterStorage__blobServiceUri: storageBlobEndpoint
    DeadLetterStorage__credential: 'managedidentity'
    DeadLetterStorage__clientId: identityClientId
    AUTH_ISSUER: authIssuer
    AUTH_AUDIENCE: authAudience
    AUTH_JWKS_URI: authJwksUri
  }
}

output name string = functionApp.name
output id string = functionApp.id
output defaultHostName string = functionApp.properties.defaultHostName
output authAudience string = authAudience
