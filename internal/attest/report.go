// Package attest is the protocol between the verifier sidecar and the
// operator's attestation endpoint: what a report says, the server that
// accepts a report only for the device whose certificate signed the
// connection, and the client that sends it.
package attest

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Path is where the attestation endpoint takes reports.
const Path = "/v1/reports"

// Report is one round of checks by a verifier.
type Report struct {
	// Device names the device the verifier speaks for, as namespace/name.
	// The server refuses a report whose Device differs from the identity
	// in the client certificate.
	Device string `json:"device"`
	// Time is when the checks ran, by the verifier's clock.
	Time time.Time `json:"time"`
	// Checks are the verifier's own findings.
	Checks []Check `json:"checks"`
	// Firmware is what the device says it runs; nil when not probed.
	Firmware *Firmware `json:"firmware,omitempty"`
}

// Check is one thing the verifier looked at.
type Check struct {
	// Name is what was checked: identity, endpoint, firmware.
	Name string `json:"name"`
	// Passed is the outcome.
	Passed bool `json:"passed"`
	// Detail explains a failure, or what passed.
	Detail string `json:"detail,omitempty"`
}

// Firmware is what a device reports about its firmware.
type Firmware struct {
	Version string `json:"version"`
	SHA256  string `json:"sha256,omitempty"`
}

// Failures returns the details of the checks that failed.
func (r Report) Failures() []string {
	var out []string
	for _, c := range r.Checks {
		if !c.Passed {
			out = append(out, fmt.Sprintf("%s: %s", c.Name, c.Detail))
		}
	}
	return out
}

// ParseSPIFFEID returns the device a SPIFFE ID names, if it is a device ID
// of the trust domain.
func ParseSPIFFEID(trustDomain, id string) (types.NamespacedName, bool) {
	rest, ok := strings.CutPrefix(id, "spiffe://"+trustDomain+"/ns/")
	if !ok {
		return types.NamespacedName{}, false
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || parts[1] != "device" || parts[0] == "" || parts[2] == "" {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: parts[0], Name: parts[2]}, true
}
