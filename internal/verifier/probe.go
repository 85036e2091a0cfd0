package verifier

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/medinaii/iomt-operator/internal/attest"
)

// maxFirmwareBytes bounds a firmware document.
const maxFirmwareBytes = 64 << 10

// FirmwareProbe learns the firmware a device says it runs. The verifier
// only passes it on; the operator compares it with the MedicalDevice.
type FirmwareProbe interface {
	// Firmware returns what the device reports. conn is the verified
	// mutual TLS connection to the device endpoint, nil when there is
	// none; a probe may use it for one exchange.
	Firmware(ctx context.Context, conn *tls.Conn) (attest.Firmware, error)
	// Protocol is the application protocol the probe speaks over the
	// endpoint connection, offered when it is opened; empty when the probe
	// does not use the connection.
	Protocol() string
	// String says where the probe looks, for reports and logs.
	String() string
}

// HTTPSJSONProbe asks the device endpoint, over the connection the
// endpoint check opened, for GET Path and reads a JSON document
// {"version": ..., "sha256": ...}.
type HTTPSJSONProbe struct {
	// Host is sent as the request's host.
	Host string
	// Path is the URL path, /firmware say.
	Path string
}

// Protocol is HTTP/1.1, spoken over the endpoint connection.
func (p HTTPSJSONProbe) Protocol() string { return "http/1.1" }

func (p HTTPSJSONProbe) String() string { return "GET " + p.Path }

// Firmware asks the endpoint.
func (p HTTPSJSONProbe) Firmware(ctx context.Context, conn *tls.Conn) (attest.Firmware, error) {
	if conn == nil {
		return attest.Firmware{}, errors.New("not probed: no verified connection to the endpoint")
	}
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			return attest.Firmware{}, fmt.Errorf("failed to set a deadline: %w", err)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+p.Host+p.Path, nil)
	if err != nil {
		return attest.Firmware{}, fmt.Errorf("failed to build the firmware request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Close = true
	if err := req.Write(conn); err != nil {
		return attest.Firmware{}, fmt.Errorf("failed to ask for the firmware: %w", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return attest.Firmware{}, fmt.Errorf("failed to read the firmware answer: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return attest.Firmware{}, fmt.Errorf("GET %s answered %s", p.Path, resp.Status)
	}
	return decodeFirmware(resp.Body)
}

// FileProbe reads the firmware document from a file the device's gateway
// writes into a volume it shares with the verifier.
type FileProbe struct {
	Path string
}

// Protocol is empty: the probe reads a file.
func (p FileProbe) Protocol() string { return "" }

func (p FileProbe) String() string { return "file " + p.Path }

// Firmware reads the file.
func (p FileProbe) Firmware(context.Context, *tls.Conn) (attest.Firmware, error) {
	f, err := os.Open(p.Path)
	if err != nil {
		return attest.Firmware{}, fmt.Errorf("failed to open the firmware file: %w", err)
	}
	defer f.Close()
	return decodeFirmware(f)
}

// decodeFirmware reads a firmware document: a version is required, and a
// digest, when given, must be a hex SHA-256.
func decodeFirmware(r io.Reader) (attest.Firmware, error) {
	var fw attest.Firmware
	if err := json.NewDecoder(io.LimitReader(r, maxFirmwareBytes)).Decode(&fw); err != nil {
		return attest.Firmware{}, fmt.Errorf("failed to decode the firmware document: %w", err)
	}
	fw.Version = strings.TrimSpace(fw.Version)
	if fw.Version == "" {
		return attest.Firmware{}, errors.New("the firmware document has no version")
	}
	if fw.SHA256 != "" {
		fw.SHA256 = strings.ToLower(strings.TrimSpace(fw.SHA256))
		if b, err := hex.DecodeString(fw.SHA256); err != nil || len(b) != 32 {
			return attest.Firmware{}, fmt.Errorf("the firmware digest %q is not a hex SHA-256", fw.SHA256)
		}
	}
	return fw, nil
}

// newProbe makes the probe the configuration asks for, nil for none.
func newProbe(c Config) FirmwareProbe {
	switch c.FirmwareProbe {
	case ProbeHTTPSJSON:
		return HTTPSJSONProbe{Host: c.Endpoint, Path: c.FirmwarePath}
	case ProbeFile:
		return FileProbe{Path: c.FirmwarePath}
	default:
		return nil
	}
}
