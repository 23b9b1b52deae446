package gitops

import (
	"fmt"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
)

// Credentials for the fleet repository, as the worker reads them from its
// environment (a Kubernetes Secret): a token over HTTPS, or an SSH key.
type Credentials struct {
	// Username and Token authenticate over HTTPS (HTTP basic, which GitHub,
	// GitLab and Azure Repos take with a personal access or app token as
	// the password; the username is ignored by most, default "modelfleet").
	Username, Token string
	// SSHKeyFile is a private key in PEM or OpenSSH format for ssh:// and
	// git@host: remotes; SSHKeyPassphrase unlocks it, if it is encrypted.
	SSHKeyFile, SSHKeyPassphrase string
	// SSHUser is the remote user (default "git").
	SSHUser string
}

// CredentialsFromEnv reads MODELFLEET_GITOPS_USERNAME, _TOKEN, _SSH_KEY
// (a file path), _SSH_KEY_PASSPHRASE and _SSH_USER.
func CredentialsFromEnv() Credentials {
	return Credentials{
		Username: os.Getenv("MODELFLEET_GITOPS_USERNAME"), Token: os.Getenv("MODELFLEET_GITOPS_TOKEN"),
		SSHKeyFile: os.Getenv("MODELFLEET_GITOPS_SSH_KEY"), SSHKeyPassphrase: os.Getenv("MODELFLEET_GITOPS_SSH_KEY_PASSPHRASE"),
		SSHUser: os.Getenv("MODELFLEET_GITOPS_SSH_USER"),
	}
}

// AuthFor returns the go-git auth method for url: a token for an https
// remote, a key for an ssh one, nil when none is configured (anonymous or
// a local path). Giving a credential the remote's scheme cannot use is an
// error, so a token meant for HTTPS is never offered over SSH or plain
// HTTP. The secrets themselves never appear in errors.
func (c Credentials) AuthFor(url string) (transport.AuthMethod, error) {
	ep, err := transport.NewEndpoint(url)
	if err != nil {
		return nil, redactErr(fmt.Errorf("gitops: repository %q: %w", redactURL(url), err), url)
	}
	switch {
	case c.Token != "" && c.SSHKeyFile != "":
		return nil, fmt.Errorf("gitops: both a token and an SSH key are set: set the one %s:// takes", ep.Protocol)
	case c.Token != "":
		if ep.Protocol != "https" && !(ep.Protocol == "http" && isLoopback(ep.Host)) {
			return nil, fmt.Errorf("gitops: a token is set but the repository %q is not https: it would travel in the clear", redactURL(url))
		}
		user := c.Username
		if user == "" {
			user = "modelfleet"
		}
		return &githttp.BasicAuth{Username: user, Password: c.Token}, nil
	case c.SSHKeyFile != "":
		if ep.Protocol != "ssh" {
			return nil, fmt.Errorf("gitops: an SSH key is set but the repository %q is not ssh", redactURL(url))
		}
		user := c.SSHUser
		if user == "" {
			user = "git"
		}
		keys, err := gitssh.NewPublicKeysFromFile(user, c.SSHKeyFile, c.SSHKeyPassphrase)
		if err != nil {
			return nil, fmt.Errorf("gitops: SSH key %s: %w", c.SSHKeyFile, err)
		}
		return keys, nil
	}
	return nil, nil
}

func isLoopback(host string) bool {
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// redactErr rewrites err's message with every copy of url, and of the
// credentials written into it, redacted: errors reach logs, the site's
// reported state and so workflow histories. errors.Is and As still see
// the wrapped error.
func redactErr(err error, url string) error {
	if err == nil || url == redactURL(url) {
		return err
	}
	msg := strings.ReplaceAll(err.Error(), url, redactURL(url))
	if j, i := strings.Index(url, "://"), strings.Index(url, "@"); j >= 0 && i > j+3 {
		if cred := url[j+3 : i]; cred != "" {
			msg = strings.ReplaceAll(msg, cred, "***")
		}
	}
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactURL drops a password written into a URL.
func redactURL(u string) string {
	if i := strings.Index(u, "@"); i >= 0 {
		if j := strings.Index(u, "://"); j >= 0 && j < i {
			return u[:j+3] + "***" + u[i:]
		}
	}
	return u
}
