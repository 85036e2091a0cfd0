package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/medinaii/iomt-operator/internal/advisory"
)

// group is the API group of MedicalDevice.
const group = "iomt.medinaii.io"

// device is one MedicalDevice manifest.
type device struct {
	advisory.Device
	// Namespace and Name are the manifest's metadata.
	Namespace, Name string
	// Source says where the manifest was read.
	Source string
}

// name is namespace/name, or where the manifest came from when it has
// no name.
func (d device) name() string {
	switch {
	case d.Name == "":
		return d.Source
	case d.Namespace == "":
		return d.Name
	}
	return d.Namespace + "/" + d.Name
}

// manifest holds the few fields of a MedicalDevice, or of a list of
// them, that matching needs.
type manifest struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name      string `json:"name"`
		Namespace string `json:"namespace"`
	} `json:"metadata"`
	Spec struct {
		Manufacturer scalar `json:"manufacturer"`
		Model        scalar `json:"model"`
		Firmware     struct {
			Version versionText `json:"version"`
		} `json:"firmware"`
	} `json:"spec"`
	Items []json.RawMessage `json:"items"`
}

// scalar is a string that may also be written as a bare number
// ("model: 8015").
type scalar string

// UnmarshalJSON accepts a string or a number.
func (s *scalar) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] != '"' && data[0] != 'n' {
		if !isNumber(data) || !json.Valid(data) {
			return fmt.Errorf("failed to read %s as text", data)
		}
		*s = scalar(data)
		return nil
	}
	var str string
	if err := json.Unmarshal(data, &str); err != nil {
		return fmt.Errorf("failed to read text: %w", err)
	}
	*s = scalar(str)
	return nil
}

// versionText is a firmware version, which must be a YAML string: an
// unquoted 1.10 reaches the program as the number 1.1.
type versionText string

// UnmarshalJSON accepts only a string.
func (v *versionText) UnmarshalJSON(data []byte) error {
	if isNumber(data) {
		return fmt.Errorf("spec.firmware.version is the number %s; quote the version in "+
			"the manifest, because YAML reads an unquoted 1.10 as 1.1", data)
	}
	var str string
	if err := json.Unmarshal(data, &str); err != nil {
		return fmt.Errorf("failed to read spec.firmware.version: %w", err)
	}
	*v = versionText(str)
	return nil
}

// isNumber reports whether a JSON value is a number.
func isNumber(data []byte) bool {
	return len(data) > 0 && (data[0] == '-' || (data[0] >= '0' && data[0] <= '9'))
}

// loadDevices reads MedicalDevice manifests from a file or, recursively,
// from the .yaml and .yml files of a folder. Other kinds of object are
// passed over; files or documents that cannot be read are reported.
func loadDevices(path string) ([]device, []error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, []error{fmt.Errorf("failed to read devices: %w", err)}
	}
	if !info.IsDir() {
		return readManifestFile(path)
	}
	var devices []device
	var errs []error
	walkErr := filepath.WalkDir(path, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			errs = append(errs, fmt.Errorf("failed to read devices from %s: %w", p, err))
			return nil
		}
		ext := strings.ToLower(filepath.Ext(p))
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			return nil
		}
		ds, es := readManifestFile(p)
		devices = append(devices, ds...)
		errs = append(errs, es...)
		return nil
	})
	if walkErr != nil {
		errs = append(errs, fmt.Errorf("failed to read devices from %s: %w", path, walkErr))
	}
	return devices, errs
}

// readManifestFile reads every YAML document of one file.
func readManifestFile(path string) ([]device, []error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, []error{fmt.Errorf("failed to read devices from %s: %w", path, err)}
	}
	var devices []device
	var errs []error
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("failed to split %s into YAML documents: %w", path, err))
			break
		}
		source := fmt.Sprintf("%s#%d", path, i)
		var m manifest
		if err := yaml.Unmarshal(doc, &m); err != nil {
			errs = append(errs, fmt.Errorf("failed to read %s: %w", source, err))
			continue
		}
		ds, es := m.devices(source)
		devices = append(devices, ds...)
		errs = append(errs, es...)
	}
	return devices, errs
}

// devices returns the MedicalDevice the manifest describes, or those of a
// list; any other object yields none.
func (m manifest) devices(source string) ([]device, []error) {
	if strings.HasSuffix(m.Kind, "List") {
		var devices []device
		var errs []error
		for j, raw := range m.Items {
			var item manifest
			src := fmt.Sprintf("%s items[%d]", source, j)
			if err := json.Unmarshal(raw, &item); err != nil {
				errs = append(errs, fmt.Errorf("failed to read %s: %w", src, err))
				continue
			}
			ds, es := item.devices(src)
			devices = append(devices, ds...)
			errs = append(errs, es...)
		}
		return devices, errs
	}
	if m.Kind != "MedicalDevice" || !strings.HasPrefix(m.APIVersion, group+"/") {
		return nil, nil
	}
	return []device{{
		Device: advisory.Device{
			Manufacturer:    strings.TrimSpace(string(m.Spec.Manufacturer)),
			Model:           strings.TrimSpace(string(m.Spec.Model)),
			FirmwareVersion: strings.TrimSpace(string(m.Spec.Firmware.Version)),
		},
		Namespace: m.Metadata.Namespace,
		Name:      m.Metadata.Name,
		Source:    source,
	}}, nil
}
