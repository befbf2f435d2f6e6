// Alerts and a workbook over the telemetry the app sends to Application Insights: the
// cqrs.* metrics of shared/telemetry.py (customMetrics) and its request spans (requests).
// The rules and the workbook's charts are data beside this file (alerts.json,
// workbook.json), so tests/test_observability_infra.py checks them against the code.

@description('Name of the Application Insights component the app sends telemetry to.')
param applicationInsightsName string

@description('Azure region of the alert rules and the workbook.')
param location string

@description('Tags applied to every resource.')
param tags object

@description('Name of the action group the alerts notify.')
param actionGroupName string

@description('Prefix of the alert rule names.')
param alertNamePrefix string

@description('E-mail address the alerts are sent to; empty: the alerts fire in the portal only.')
param alertEmail string = ''

var alerts = loadJsonContent('alerts.json').alerts
var workbook = loadJsonContent('workbook.json')
var emailReceivers = [
  {
    name: 'operators'
    emailAddress: alertEmail
    useCommonAlertSchema: true
  }
]

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'orders-ops'
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : emailReceivers
  }
}

// Log alerts on customMetrics: each query yields `value` per dimension; a rule fires when
// the largest value of a 5-minute window is above its threshold, and resolves itself.
resource alertRules 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for alert in alerts: {
    name: '${alertNamePrefix}-${alert.name}'
    location: location
    tags: tags
    kind: 'LogAlert'
    properties: {
      displayName: alert.title
      description: alert.description
      severity: alert.severity
      enabled: true
      scopes: [
        applicationInsights.id
      ]
      evaluationFrequency: 'PT5M'
      windowSize: 'PT5M'
      criteria: {
        allOf: [
          {
            query: alert.query
            timeAggregation: 'Maximum'
            metricMeasureColumn: 'value'
            dimensions: alert.dimensions
            operator: 'GreaterThan'
            threshold: alert.threshold
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      autoMitigate: true
      actions: {
        actionGroups: [
          actionGroup.id
        ]
      }
    }
  }
]

resource dashboard 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID; this one is stable per resource group.
  name: guid(resourceGroup().id, applicationInsightsName, 'orders-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Orders: commands, queries, projections'
    category: 'workbook'
    sourceId: applicationInsights.id
    serializedData: string(union(workbook, { fallbackResourceIds: [applicationInsights.id] }))
    version: '1.0'
  }
}

output actionGroupName string = actionGroup.name
output workbookName string = dashboard.name
