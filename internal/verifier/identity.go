package verifier

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/medinaii/iomt-operator/internal/attest"
)

// Files of the identity directory.
const (
	certFile   = "tls.crt"
	keyFile    = "tls.key"
	caFile     = "ca.crt"
	bundleFile = "bundle.crt"
)

// Identity is the key pair the verifier speaks with and the CAs it trusts.
type Identity struct {
	// KeyPair is the certificate chain and key it presents.
	KeyPair tls.Certificate
	// Leaf is its certificate, Intermediates the rest of tls.crt.
	Leaf          *x509.Certificate
	Intermediates *x509.CertPool
	// Roots are the CAs it trusts, from RootsFile.
	Roots     *x509.CertPool
	RootsFile string
	// SPIFFEID is the leaf's spiffe:// URI SAN, empty when it has none.
	SPIFFEID string

	digest [sha256.Size]byte
}

// Device is the device the certificate names in trustDomain.
func (id *Identity) Device(trustDomain string) (types.NamespacedName, bool) {
	return attest.ParseSPIFFEID(trustDomain, id.SPIFFEID)
}

// readIdentityFiles reads the directory's files; a missing bundle or CA
// file reads as empty.
func readIdentityFiles(dir string) (map[string][]byte, [sha256.Size]byte, error) {
	files := map[string][]byte{}
	h := sha256.New()
	for _, name := range []string{certFile, keyFile, caFile, bundleFile} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		switch {
		case errors.Is(err, fs.ErrNotExist) && (name == caFile || name == bundleFile):
		case err != nil:
			return nil, [sha256.Size]byte{}, fmt.Errorf("failed to read %s: %w", name, err)
		}
		files[name] = data
		fmt.Fprintf(h, "%s %d\n", name, len(data))
		h.Write(data)
	}
	var sum [sha256.Size]byte
	copy(sum[:], h.Sum(nil))
	return files, sum, nil
}

// parseIdentity makes an identity of the files. It fails on anything a
// half-written update could leave: an unreadable certificate or key, a
// key of another certificate, a bundle without certificates.
func parseIdentity(files map[string][]byte, digest [sha256.Size]byte) (*Identity, error) {
	kp, err := tls.X509KeyPair(files[certFile], files[keyFile])
	if err != nil {
		return nil, fmt.Errorf("failed to load the key pair: %w", err)
	}
	id := &Identity{KeyPair: kp, Leaf: kp.Leaf, Intermediates: x509.NewCertPool(), digest: digest}
	if id.Leaf == nil {
		if id.Leaf, err = x509.ParseCertificate(kp.Certificate[0]); err != nil {
			return nil, fmt.Errorf("failed to parse the certificate: %w", err)
		}
	}
	for _, der := range kp.Certificate[1:] {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("failed to parse the certificate chain: %w", err)
		}
		id.Intermediates.AddCert(c)
	}
	for _, u := range id.Leaf.URIs {
		if u.Scheme == "spiffe" {
			id.SPIFFEID = u.String()
			break
		}
	}

	// The bundle holds every CA of the namespace; the issuing CA alone
	// serves where no bundle is mounted.
	id.RootsFile = bundleFile
	roots := files[bundleFile]
	if len(bytes.TrimSpace(roots)) == 0 {
		id.RootsFile, roots = caFile, files[caFile]
	}
	id.Roots = x509.NewCertPool()
	if !id.Roots.AppendCertsFromPEM(roots) {
		return nil, fmt.Errorf("failed to load trusted CAs: %s holds no certificate", id.RootsFile)
	}
	return id, nil
}

// LoadIdentity reads an identity directory once.
func LoadIdentity(dir string) (*Identity, error) {
	files, digest, err := readIdentityFiles(dir)
	if err != nil {
		return nil, err
	}
	return parseIdentity(files, digest)
}

// IdentitySource holds the current identity and reloads it when the
// directory changes. The kubelet renews a projected volume by swapping a
// symlink, so polling the contents sees every renewal; an update that
// cannot be used leaves the previous identity in place.
type IdentitySource struct {
	Dir     string
	Log     *slog.Logger
	Metrics *Metrics

	current atomic.Pointer[Identity]
	mu      sync.Mutex
	// rejected is the digest of the last contents that could not be used,
	// so that a broken update is reported once, not at every poll.
	rejected [sha256.Size]byte
}

// Current is the identity in use, nil until one loaded.
func (s *IdentitySource) Current() *Identity { return s.current.Load() }

// Reload reads the directory and switches to its contents when they
// changed and can be used. It reports whether it switched.
func (s *IdentitySource) Reload() (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	files, digest, err := readIdentityFiles(s.Dir)
	if err != nil {
		s.Metrics.reloaded(false)
		return false, err
	}
	cur := s.current.Load()
	if (cur != nil && cur.digest == digest) || s.rejected == digest {
		return false, nil
	}
	id, err := parseIdentity(files, digest)
	if err != nil {
		s.rejected = digest
		s.Metrics.reloaded(false)
		return false, err
	}
	s.current.Store(id)
	s.Metrics.reloaded(true)
	s.Metrics.certificate(id.Leaf)
	s.Log.Info("Loaded the device identity", "spiffeID", id.SPIFFEID,
		"serial", id.Leaf.SerialNumber.Text(16), "notAfter", id.Leaf.NotAfter, "trust", id.RootsFile)
	return true, nil
}

// Watch reloads every interval until ctx ends.
func (s *IdentitySource) Watch(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	var last string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, err := s.Reload()
			// The same trouble is logged once, not at every poll.
			if err != nil && err.Error() != last {
				s.logRejected(err)
			}
			last = ""
			if err != nil {
				last = err.Error()
			}
		}
	}
}

func (s *IdentitySource) logRejected(err error) {
	if s.Current() == nil {
		s.Log.Warn("No usable device identity yet", "dir", s.Dir, "error", err)
		return
	}
	s.Log.Warn("Keeping the current device identity: the update cannot be used", "dir", s.Dir,
		"error", err)
}
