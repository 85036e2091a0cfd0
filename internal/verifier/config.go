// Package verifier is the verifier sidecar: every interval it checks the
// device certificate it holds, the device endpoint's TLS identity and the
// firmware the device reports, and sends what it found to the operator's
// attestation endpoint over mutual TLS with that same certificate. It
// judges nothing: the operator compares the firmware with the
// MedicalDevice.
package verifier

import (
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Defaults of the command line. The pod admission webhook sets the flags
// from the device's spec.verification when it adds the sidecar; a change
// to that spec reaches a running verifier only when its pod is recreated.
const (
	DefaultIdentityDir    = "/var/run/iomt/identity"
	DefaultAttestationURL = "https://iomt-operator-attestation.iomt-system.svc:8444"
	DefaultInterval       = 30 * time.Second
	DefaultHealthAddr     = ":8090"
	DefaultTrustDomain    = "iomt.local"
	DefaultFirmwarePath   = "/firmware"
	// AttestationURLEnv overrides the default attestation URL.
	AttestationURLEnv = "IOMT_ATTESTATION_URL"
	// defaultReloadEvery is how often the identity directory is read
	// again to pick up a renewed certificate.
	defaultReloadEvery = 2 * time.Second
)

// The firmware probes the command line knows.
const (
	ProbeHTTPSJSON = "https-json"
	ProbeFile      = "file"
	ProbeNone      = "none"
)

// Config is what the verifier needs to run.
type Config struct {
	// IdentityDir holds tls.crt, tls.key, ca.crt and bundle.crt.
	IdentityDir string
	// AttestationURL is the operator's attestation endpoint, https://host:port.
	AttestationURL string
	// Device is the device reported for; taken from the SPIFFE ID of the
	// certificate when zero.
	Device types.NamespacedName
	// Interval is the time between rounds of checks.
	Interval time.Duration
	// Endpoint is the device's mutual TLS endpoint, host:port; empty
	// skips the endpoint check.
	Endpoint string
	// ServerSPIFFEID is what the endpoint must present; the device's own
	// SPIFFE ID when empty and ServerFingerprint is empty too.
	ServerSPIFFEID string
	// ServerFingerprint pins the endpoint's certificate by the lowercase
	// hex SHA-256 of its DER.
	ServerFingerprint string
	// FirmwareProbe is https-json, file or none.
	FirmwareProbe string
	// FirmwarePath is the URL path (https-json) or the file (file).
	FirmwarePath string
	// HealthAddr serves /healthz and /metrics; empty turns it off.
	HealthAddr string
	// TrustDomain is the SPIFFE trust domain of device identities.
	TrustDomain string
	// ReloadEvery is how often the identity directory is read again.
	ReloadEvery time.Duration
}

// ParseFlags reads the command line. getenv supplies the environment,
// for the attestation URL's override.
func ParseFlags(args []string, getenv func(string) string) (Config, error) {
	c := Config{ReloadEvery: defaultReloadEvery}
	url := DefaultAttestationURL
	if v := getenv(AttestationURLEnv); v != "" {
		url = v
	}
	var device string
	fs := flag.NewFlagSet("verifier", flag.ContinueOnError)
	fs.StringVar(&c.IdentityDir, "identity-dir", DefaultIdentityDir,
		"Directory with the device identity: tls.crt, tls.key, ca.crt and bundle.crt.")
	fs.StringVar(&c.AttestationURL, "attestation-url", url,
		"The operator's attestation endpoint; $"+AttestationURLEnv+" overrides the default.")
	fs.StringVar(&device, "device", "",
		"The device to report for, namespace/name; by default the one the certificate's "+
			"SPIFFE ID names.")
	fs.DurationVar(&c.Interval, "interval", DefaultInterval, "Time between rounds of checks.")
	fs.StringVar(&c.Endpoint, "endpoint", "",
		"The device's mutual TLS endpoint, host:port; empty skips the endpoint check.")
	fs.StringVar(&c.ServerSPIFFEID, "server-spiffe-id", "",
		"SPIFFE ID the endpoint must present; by default the device's own, unless a "+
			"fingerprint is pinned.")
	fs.StringVar(&c.ServerFingerprint, "server-fingerprint", "",
		"Hex SHA-256 of the DER of the endpoint's certificate, for certificates no CA of the "+
			"bundle signs.")
	fs.StringVar(&c.FirmwareProbe, "firmware-probe", ProbeNone,
		"How to learn the running firmware: https-json (ask the endpoint), file or none.")
	fs.StringVar(&c.FirmwarePath, "firmware-path", "",
		"URL path for https-json (default "+DefaultFirmwarePath+") or the file for file.")
	fs.StringVar(&c.HealthAddr, "health-addr", DefaultHealthAddr,
		"Address serving /healthz and /metrics; empty turns it off.")
	fs.StringVar(&c.TrustDomain, "trust-domain", DefaultTrustDomain, "SPIFFE trust domain of devices.")
	if err := fs.Parse(args); err != nil {
		return Config{}, fmt.Errorf("failed to parse the command line: %w", err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("failed to parse the command line: unexpected %q", fs.Arg(0))
	}
	if device != "" {
		ns, name, ok := strings.Cut(device, "/")
		if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
			return Config{}, fmt.Errorf("failed to parse --device %q: want namespace/name", device)
		}
		c.Device = types.NamespacedName{Namespace: ns, Name: name}
	}
	if err := c.complete(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// complete checks the configuration and fills in what follows from it.
func (c *Config) complete() error {
	var errs []error
	if c.IdentityDir == "" {
		errs = append(errs, errors.New("--identity-dir is required"))
	}
	if !strings.HasPrefix(c.AttestationURL, "https://") {
		errs = append(errs, fmt.Errorf("--attestation-url %q must start with https://", c.AttestationURL))
	}
	if c.Interval < time.Second {
		errs = append(errs, fmt.Errorf("--interval %s is shorter than 1s", c.Interval))
	}
	if c.Endpoint != "" {
		if _, _, err := net.SplitHostPort(c.Endpoint); err != nil {
			errs = append(errs, fmt.Errorf("--endpoint %q is not host:port: %w", c.Endpoint, err))
		}
	}
	if c.ServerSPIFFEID != "" && !strings.HasPrefix(c.ServerSPIFFEID, "spiffe://") {
		errs = append(errs, fmt.Errorf("--server-spiffe-id %q is not a spiffe:// URI", c.ServerSPIFFEID))
	}
	if c.ServerFingerprint != "" {
		fp := strings.ToLower(strings.ReplaceAll(c.ServerFingerprint, ":", ""))
		if b, err := hex.DecodeString(fp); err != nil || len(b) != 32 {
			errs = append(errs, fmt.Errorf("--server-fingerprint %q is not a hex SHA-256",
				c.ServerFingerprint))
		}
		c.ServerFingerprint = fp
	}
	if (c.ServerSPIFFEID != "" || c.ServerFingerprint != "") && c.Endpoint == "" {
		errs = append(errs, errors.New("--server-spiffe-id and --server-fingerprint need --endpoint"))
	}
	switch c.FirmwareProbe {
	case "", ProbeNone:
		c.FirmwareProbe = ProbeNone
	case ProbeHTTPSJSON:
		if c.Endpoint == "" {
			errs = append(errs, errors.New("--firmware-probe=https-json needs --endpoint"))
		}
		if c.FirmwarePath == "" {
			c.FirmwarePath = DefaultFirmwarePath
		}
		if !strings.HasPrefix(c.FirmwarePath, "/") {
			errs = append(errs, fmt.Errorf("--firmware-path %q must start with /", c.FirmwarePath))
		}
	case ProbeFile:
		if c.FirmwarePath == "" {
			errs = append(errs, errors.New("--firmware-probe=file needs --firmware-path"))
		}
	default:
		errs = append(errs, fmt.Errorf("--firmware-probe %q is none of https-json, file, none",
			c.FirmwareProbe))
	}
	if c.TrustDomain == "" {
		errs = append(errs, errors.New("--trust-domain is required"))
	}
	if c.ReloadEvery <= 0 {
		c.ReloadEvery = defaultReloadEvery
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("failed to configure the verifier: %w", err)
	}
	return nil
}
