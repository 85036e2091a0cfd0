package clinic

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// LoadManifests reads every *.yaml file in dir except kustomization.yaml,
// in name order, and decodes each YAML document into an object. Documents
// that hold only comments are skipped.
func LoadManifests(dir string) ([]*unstructured.Unstructured, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, fmt.Errorf("failed to list manifests in %s: %w", dir, err)
	}
	sort.Strings(files)

	var objs []*unstructured.Unstructured
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		got, err := decodeFile(f)
		if err != nil {
			return nil, err
		}
		objs = append(objs, got...)
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("no manifests found in %s", dir)
	}
	return objs, nil
}

func decodeFile(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	return DecodeManifests(data, path)
}

// DecodeManifests decodes every YAML document in data into an object,
// skipping documents that hold only comments; source names data in errors.
func DecodeManifests(data []byte, path string) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("failed to split %s into documents: %w", path, err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("failed to decode document %d of %s: %w", i, path, err)
		}
		if len(m) == 0 {
			continue
		}
		obj := &unstructured.Unstructured{Object: m}
		if obj.GetKind() == "" || obj.GetAPIVersion() == "" || obj.GetName() == "" {
			return nil, fmt.Errorf("document %d of %s needs apiVersion, kind and metadata.name", i, path)
		}
		objs = append(objs, obj)
	}
}

// Apply writes objs by server-side apply with the given field manager,
// Namespaces first so that what lives in them can follow. Applying the same
// objects again changes nothing. The first object the API server refuses
// stops it, with the server's reason.
func Apply(ctx context.Context, c client.Client, objs []*unstructured.Unstructured,
	fieldOwner string) error {
	var namespaces, rest []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetAPIVersion() == "v1" && o.GetKind() == "Namespace" {
			namespaces = append(namespaces, o)
		} else {
			rest = append(rest, o)
		}
	}
	for _, o := range append(namespaces, rest...) {
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()),
			client.FieldOwner(fieldOwner), client.ForceOwnership); err != nil {
			return fmt.Errorf("failed to apply %s %s: %w", o.GetKind(), describe(o), err)
		}
	}
	return nil
}

// Namespaces returns the names of the Namespace objects among objs.
func Namespaces(objs []*unstructured.Unstructured) []string {
	var names []string
	for _, o := range objs {
		if o.GetAPIVersion() == "v1" && o.GetKind() == "Namespace" {
			names = append(names, o.GetName())
		}
	}
	return names
}

// Count returns how many of objs are of the given kind.
func Count(objs []*unstructured.Unstructured, kind string) int {
	n := 0
	for _, o := range objs {
		if o.GetKind() == kind {
			n++
		}
	}
	return n
}

func describe(o *unstructured.Unstructured) string {
	if o.GetNamespace() == "" {
		return o.GetName()
	}
	return o.GetNamespace() + "/" + o.GetName()
}
