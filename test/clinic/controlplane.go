// Package clinic runs the operator on a sample clinic: it starts a local
// kube-apiserver and etcd with Secrets encrypted at rest, runs the
// controllers in-process, applies manifests, stands in pods for devices,
// waits until everything is reconciled, and reports what the operator made
// of it, down to which connections its NetworkPolicies allow. The demo and
// the end-to-end tests share it.
package clinic

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// AssetsEnv names the environment variable that points at the directory
// holding kube-apiserver, etcd and kubectl.
const AssetsEnv = "KUBEBUILDER_ASSETS"

// EncryptedPrefix starts every value kube-apiserver writes to etcd through
// the AES-GCM provider with the key name EncryptionKeyName.
const EncryptedPrefix = "k8s:enc:aesgcm:v1:" + EncryptionKeyName + ":"

// EncryptionKeyName is the name of the AES-GCM key in the encryption
// configuration.
const EncryptionKeyName = "local-key-1"

// ControlPlane is a local kube-apiserver and etcd.
type ControlPlane struct {
	// Env is the running test environment.
	Env *envtest.Environment
	// Config reaches kube-apiserver as an administrator.
	Config *rest.Config

	dir string
}

// StartControlPlane starts kube-apiserver and etcd from the binaries in
// $KUBEBUILDER_ASSETS and installs the CRDs found in crdDir. kube-apiserver
// encrypts Secrets at rest with AES-256-GCM under a key made for this run
// only; Secrets written before it existed would still be read as plain text.
func StartControlPlane(crdDir string) (*ControlPlane, error) {
	if os.Getenv(AssetsEnv) == "" {
		return nil, fmt.Errorf("%s is not set: it must name the directory that holds "+
			"kube-apiserver, etcd and kubectl (make control-plane builds them into bin/k8s)", AssetsEnv)
	}
	dir, err := os.MkdirTemp("", "iomt-control-plane-")
	if err != nil {
		return nil, fmt.Errorf("failed to create a directory for the control plane: %w", err)
	}
	encryption, err := WriteEncryptionConfig(dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}

	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{crdDir},
		ErrorIfCRDPathMissing: true,
	}
	env.ControlPlane.GetAPIServer().Configure().Set("encryption-provider-config", encryption)
	cfg, err := env.Start()
	if err != nil {
		_ = env.Stop()
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("failed to start kube-apiserver and etcd: %w", err)
	}
	return &ControlPlane{Env: env, Config: cfg, dir: dir}, nil
}

// Stop stops kube-apiserver and etcd and removes the encryption key.
func (cp *ControlPlane) Stop() error {
	err := cp.Env.Stop()
	if rmErr := os.RemoveAll(cp.dir); rmErr != nil {
		err = errors.Join(err, fmt.Errorf("failed to remove %s: %w", cp.dir, rmErr))
	}
	if err != nil {
		return fmt.Errorf("failed to stop the control plane: %w", err)
	}
	return nil
}

// EtcdURL is where etcd serves clients.
func (cp *ControlPlane) EtcdURL() string {
	return cp.Env.ControlPlane.Etcd.URL.String()
}

// ReadEtcd returns the value stored under key in etcd exactly as
// kube-apiserver wrote it, for example /registry/secrets/<ns>/<name>.
func (cp *ControlPlane) ReadEtcd(ctx context.Context, key string) ([]byte, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{cp.EtcdURL()},
		DialTimeout: 5 * time.Second,
		Context:     ctx,
	})
	if err != nil {
		return nil, fmt.Errorf("failed to connect to etcd at %s: %w", cp.EtcdURL(), err)
	}
	defer func() { _ = cli.Close() }()

	resp, err := cli.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("failed to read %s from etcd: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("etcd holds nothing under %s", key)
	}
	return resp.Kvs[0].Value, nil
}

// SecretKey is the etcd key of a Secret.
func SecretKey(namespace, name string) string {
	return "/registry/secrets/" + namespace + "/" + name
}

// IsEncrypted reports whether a value read from etcd was written by the
// AES-GCM provider of this control plane.
func IsEncrypted(raw []byte) bool {
	return bytes.HasPrefix(raw, []byte(EncryptedPrefix))
}

// WriteEncryptionConfig writes an EncryptionConfiguration for
// kube-apiserver's --encryption-provider-config into dir and returns its
// path. Secrets are written with AES-GCM under a fresh random 256-bit key;
// the identity provider after it lets kube-apiserver still read Secrets
// stored before encryption was turned on. The file is readable by its
// owner only, since it holds the key.
func WriteEncryptionConfig(dir string) (string, error) {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("failed to generate an encryption key: %w", err)
	}

	cfg := apiserverv1.EncryptionConfiguration{
		Resources: []apiserverv1.ResourceConfiguration{{
			Resources: []string{"secrets"},
			Providers: []apiserverv1.ProviderConfiguration{
				{AESGCM: &apiserverv1.AESConfiguration{Keys: []apiserverv1.Key{{
					Name: EncryptionKeyName, Secret: base64.StdEncoding.EncodeToString(key),
				}}}},
				{Identity: &apiserverv1.IdentityConfiguration{}},
			},
		}},
	}
	cfg.APIVersion = apiserverv1.SchemeGroupVersion.String()
	cfg.Kind = "EncryptionConfiguration"
	// JSON is YAML, which is what kube-apiserver reads.
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", fmt.Errorf("failed to encode the encryption configuration: %w", err)
	}

	path := filepath.Join(dir, "encryption-config.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return "", fmt.Errorf("failed to write the encryption configuration: %w", err)
	}
	return path, nil
}
