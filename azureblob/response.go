package azureblob

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// The Azure clients' shared reading of ARM and Storage responses (the Azure
// ML registry and training runner use them as well as this package).

// IsStatus reports whether err is an Azure response error with that HTTP
// status.
func IsStatus(err error, code int) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == code
}

// RetryAfter is how long a throttled response asks to wait (Retry-After in
// seconds or as an HTTP date); 0 when it does not say.
func RetryAfter(resp *http.Response) time.Duration {
	if resp == nil {
		return 0
	}
	if v := resp.Header.Get("Retry-After"); v != "" {
		var n int
		if _, err := fmt.Sscanf(v, "%d", &n); err == nil && n > 0 {
			return time.Duration(n) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return time.Until(t)
		}
	}
	return 0
}
