package argocd

import (
	"context"
	"os"
	"path"
	"path/filepath"
	"testing"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	celconfig "k8s.io/apiserver/pkg/apis/cel"
	"sigs.k8s.io/yaml"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

const crdDir = "../../config/crd/bases"

// crdSchema is what the API server checks a custom resource against.
type crdSchema struct {
	openAPI validation.SchemaValidator
	cel     *cel.Validator
}

// crdSchemas reads the CRDs the operator installs, by group and kind.
func crdSchemas(t *testing.T) map[[2]string]crdSchema {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(crdDir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in %s: %v", crdDir, err)
	}
	out := map[[2]string]crdSchema{}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := yaml.UnmarshalStrict(data, &crd); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, v := range crd.Spec.Versions {
			if v.Name != iomtv1.GroupVersion.Version {
				continue
			}
			var internal apiextensions.JSONSchemaProps
			err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(
				v.Schema.OpenAPIV3Schema, &internal, nil)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			openAPI, _, err := validation.NewSchemaValidator(&internal)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			structural, err := structuralschema.NewStructural(&internal)
			if err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			key := [2]string{crd.Spec.Group, crd.Spec.Names.Kind}
			out[key] = crdSchema{openAPI: openAPI,
				cel: cel.NewValidator(structural, true, celconfig.PerCallLimit)}
		}
	}
	return out
}

// TestFixturesMatchTheAPI checks every fixture as the API server would
// check it, and decodes it into the API's Go types refusing unknown fields,
// so that a fixture with a misspelt field or a value the API refuses
// cannot make a health check look right.
func TestFixturesMatchTheAPI(t *testing.T) {
	schemas := crdSchemas(t)
	for _, c := range healthChecks(t) {
		schema, ok := schemas[[2]string{c.Group, c.Kind}]
		if !ok {
			t.Fatalf("no CRD in %s for %s %s", crdDir, c.Group, c.Kind)
		}
		for _, f := range fixtures(t, c) {
			t.Run(c.Kind+"/"+f, func(t *testing.T) {
				file := path.Join(c.Dir, f)
				obj := readObject(t, file)
				apiVersion := c.Group + "/" + iomtv1.GroupVersion.Version
				if obj["apiVersion"] != apiVersion || obj["kind"] != c.Kind {
					t.Fatalf("apiVersion %v, kind %v: want %s, kind %s", obj["apiVersion"],
						obj["kind"], apiVersion, c.Kind)
				}

				errs := validation.ValidateCustomResource(nil, obj, schema.openAPI)
				if schema.cel != nil {
					celErrs, _ := schema.cel.Validate(context.Background(), nil, nil,
						obj, nil, celconfig.RuntimeCELCostBudget)
					errs = append(errs, celErrs...)
				}
				for _, err := range errs {
					t.Error(err)
				}

				data, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				var typed any
				switch c.Kind {
				case "MedicalDevice":
					typed = &iomtv1.MedicalDevice{}
				case "SegmentPolicy":
					typed = &iomtv1.SegmentPolicy{}
				default:
					t.Fatalf("no Go type known for %s", c.Kind)
				}
				if err := yaml.UnmarshalStrict(data, typed); err != nil {
					t.Error(err)
				}
			})
		}
	}
}
