package azure

import (
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"

	"github.com/imgly/syncer/config"
)

// QueueService is the Storage Queue service client the consumer of src's
// notifications.storageQueue uses, authenticated the same way; `syncer
// config check --connect` checks the queue through it.
func QueueService(src config.Source) (*azqueue.ServiceClient, error) {
	return queueService(src, src.Notifications.StorageQueue)
}
