package azure

import (
	"errors"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azqueue/v2"
)

// QueueService is the Storage Queue service client the consumer of
// n.StorageQueue uses, authenticated the same way; `syncer config check
// --connect` checks the queue through it.
// notifications is the source's providers.Configured.Notifications.
func QueueService(notifications any) (*azqueue.ServiceClient, error) {
	n, ok := notifications.(Notifications)
	if !ok || n.StorageQueue == nil {
		return nil, errors.New("no notifications.storageQueue")
	}
	return queueService(n.Account, n.StorageQueue)
}
