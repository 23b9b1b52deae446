// Event Grid system topic on the Azure ML workspace, and two subscriptions
// to the gateway's webhook: model lifecycle events, and model-monitor runs
// whose signal breached its thresholds (the retraining trigger).
param location string
param workspaceName string
param webhookUrl string
param tenantId string = ''
param appIdOrUri string = ''

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' existing = {
  name: workspaceName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: '${workspaceName}-modelfleet'
  location: location
  properties: {
    source: workspace.id
    topicType: 'Microsoft.MachineLearningServices.Workspaces'
  }
}

// The gateway answers 2xx only once Temporal accepted the start, so Event
// Grid's retries are what makes a delivery at-least-once; duplicates are
// harmless (workflow ID reuse policy). One event per batch keeps a slow
// start from holding others back.
var destination = union({
  endpointUrl: webhookUrl
  maxEventsPerBatch: 1
  preferredBatchSizeInKilobytes: 64
}, empty(tenantId) ? {} : {
  azureActiveDirectoryTenantId: tenantId
  azureActiveDirectoryApplicationIdOrUri: appIdOrUri
})

var retry = {
  maxDeliveryAttempts: 30
  eventTimeToLiveInMinutes: 1440
}

resource models 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'modelfleet-models'
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'WebHook'
      properties: destination
    }
    filter: {
      includedEventTypes: [
        'Microsoft.MachineLearningServices.ModelRegistered'
        'Microsoft.MachineLearningServices.ModelDeployed'
        'Microsoft.MachineLearningServices.RunCompleted'
        'Microsoft.MachineLearningServices.DatasetDriftDetected'
      ]
    }
    retryPolicy: retry
  }
}

// Model monitoring: a monitor run whose signal breached a threshold carries
// the run tag azureml_modelmonitor_threshold_breached; only those runs'
// status changes reach the gateway (events/retrain.go reads the tag).
resource monitor 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: 'modelfleet-model-monitor'
  properties: {
    eventDeliverySchema: 'EventGridSchema'
    destination: {
      endpointType: 'WebHook'
      properties: destination
    }
    filter: {
      includedEventTypes: [
        'Microsoft.MachineLearningServices.RunStatusChanged'
      ]
      enableAdvancedFilteringOnArrays: true
      advancedFilters: [
        {
          operatorType: 'StringContains'
          key: 'data.RunTags.azureml_modelmonitor_threshold_breached'
          values: [
            'has failed due to one or more features violating metric thresholds'
          ]
        }
      ]
    }
    retryPolicy: retry
  }
}

output systemTopicId string = topic.id
