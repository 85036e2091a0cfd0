package argocd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"text/template"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// The types below mirror the part of Argo CD's ApplicationSet API
// (argoproj.io/v1alpha1) that applicationset.yaml uses, under Argo CD's
// field names. Decoding refuses unknown fields, so a misspelt key fails the
// test; a field added to the example has to be added here as well, checked
// against Argo CD's API.

type applicationSet struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		GoTemplate        bool     `json:"goTemplate"`
		GoTemplateOptions []string `json:"goTemplateOptions"`
		Generators        []struct {
			Clusters *struct {
				Selector metav1.LabelSelector `json:"selector"`
			} `json:"clusters"`
		} `json:"generators"`
		Strategy *struct {
			Type        string `json:"type"`
			RollingSync struct {
				Steps []struct {
					MatchExpressions []metav1.LabelSelectorRequirement `json:"matchExpressions"`
					MaxUpdate        *intstr.IntOrString               `json:"maxUpdate"`
				} `json:"steps"`
			} `json:"rollingSync"`
		} `json:"strategy"`
		SyncPolicy struct {
			PreserveResourcesOnDeletion bool `json:"preserveResourcesOnDeletion"`
		} `json:"syncPolicy"`
		Template struct {
			Metadata objectMeta      `json:"metadata"`
			Spec     applicationSpec `json:"spec"`
		} `json:"template"`
	} `json:"spec"`
}

type objectMeta struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	Labels    map[string]string `json:"labels"`
}

type applicationSpec struct {
	Project string `json:"project"`
	Source  struct {
		RepoURL        string `json:"repoURL"`
		TargetRevision string `json:"targetRevision"`
		Path           string `json:"path"`
		Helm           *struct {
			ReleaseName string `json:"releaseName"`
		} `json:"helm"`
	} `json:"source"`
	Destination struct {
		Server    string `json:"server"`
		Namespace string `json:"namespace"`
	} `json:"destination"`
	SyncPolicy struct {
		Automated *struct {
			Prune    bool `json:"prune"`
			SelfHeal bool `json:"selfHeal"`
		} `json:"automated"`
		SyncOptions []string `json:"syncOptions"`
		Retry       struct {
			Limit   int64 `json:"limit"`
			Backoff struct {
				Duration    string `json:"duration"`
				Factor      int64  `json:"factor"`
				MaxDuration string `json:"maxDuration"`
			} `json:"backoff"`
		} `json:"retry"`
	} `json:"syncPolicy"`
	IgnoreDifferences []ignoreDifference `json:"ignoreDifferences"`
}

type ignoreDifference struct {
	Group             string   `json:"group"`
	Kind              string   `json:"kind"`
	Name              string   `json:"name"`
	JQPathExpressions []string `json:"jqPathExpressions"`
}

// clusters are the parameters the cluster generator would give two clinic
// clusters: one in the pilot wave and one that names no wave.
var clusters = []map[string]any{
	{"name": "clinic-north", "nameNormalized": "clinic-north", "server": "https://10.1.0.1:6443",
		"metadata": map[string]any{"annotations": map[string]string{}, "labels": map[string]string{
			"iomt.medinaii.io/clinic": "true", "iomt.medinaii.io/site": "north",
			"iomt.medinaii.io/wave": "pilot"}}},
	{"name": "clinic_south", "nameNormalized": "clinic-south", "server": "https://10.2.0.1:6443",
		"metadata": map[string]any{"annotations": map[string]string{}, "labels": map[string]string{
			"iomt.medinaii.io/clinic": "true", "iomt.medinaii.io/site": "south"}}},
}

const (
	webhookCABundle = ".webhooks[]?.clientConfig.caBundle"
	chartPath       = "charts/iomt-operator"
)

func readApplicationSets(t *testing.T) map[string]applicationSet {
	t.Helper()
	data, err := os.ReadFile("applicationset.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]applicationSet{}
	docs := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var set applicationSet
		if err := yaml.UnmarshalStrict(doc, &set); err != nil {
			t.Fatal(err)
		}
		out[set.Metadata.Name] = set
	}
	return out
}

// render executes the Go template s for one cluster as the ApplicationSet
// controller would: missingkey=error, with Sprig's default, the one Sprig
// function the example uses.
func render(t *testing.T, s string, cluster map[string]any) string {
	t.Helper()
	funcs := template.FuncMap{"default": func(d any, given ...any) any {
		if len(given) == 0 || given[0] == nil || given[0] == "" {
			return d
		}
		return given[0]
	}}
	tmpl, err := template.New("").Option("missingkey=error").Funcs(funcs).Parse(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, cluster); err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return b.String()
}

func renderLabels(t *testing.T, in map[string]string, cluster map[string]any) labels.Set {
	t.Helper()
	out := labels.Set{}
	for k, v := range in {
		out[k] = render(t, v, cluster)
	}
	return out
}

func TestApplicationSets(t *testing.T) {
	sets := readApplicationSets(t)
	names := map[string]bool{}
	for _, name := range []string{"iomt-operator", "iomt-inventory"} {
		set, ok := sets[name]
		if !ok {
			t.Fatalf("applicationset.yaml has no ApplicationSet %s", name)
		}
		if set.APIVersion != "argoproj.io/v1alpha1" || set.Kind != "ApplicationSet" {
			t.Errorf("%s: %s %s, want argoproj.io/v1alpha1 ApplicationSet", name, set.APIVersion,
				set.Kind)
		}
		spec := set.Spec
		if !spec.GoTemplate || !slices.Contains(spec.GoTemplateOptions, "missingkey=error") {
			t.Errorf("%s: want goTemplate with missingkey=error", name)
		}
		if len(spec.Generators) != 1 || spec.Generators[0].Clusters == nil ||
			spec.Generators[0].Clusters.Selector.MatchLabels["iomt.medinaii.io/clinic"] != "true" {
			t.Errorf("%s: want one cluster generator selecting iomt.medinaii.io/clinic=true", name)
		}
		if !spec.SyncPolicy.PreserveResourcesOnDeletion {
			t.Errorf("%s: deleting the ApplicationSet would delete what it deployed", name)
		}
		for _, cluster := range clusters {
			app := render(t, spec.Template.Metadata.Name, cluster)
			if names[app] {
				t.Errorf("%s: Application %s is generated twice", name, app)
			}
			names[app] = true
			server := render(t, spec.Template.Spec.Destination.Server, cluster)
			if server != cluster["server"] {
				t.Errorf("%s: destination %s, want the cluster's server", name, server)
			}
		}
	}

	t.Run("operator", func(t *testing.T) {
		spec := sets["iomt-operator"].Spec
		app := spec.Template.Spec
		if app.Source.Path != chartPath || !strings.Contains(app.Source.RepoURL, "example") {
			t.Errorf("source %s %s: want the example repository's %s", app.Source.RepoURL,
				app.Source.Path, chartPath)
		}
		chart, err := os.ReadFile("../../" + chartPath + "/Chart.yaml")
		if err != nil {
			t.Fatalf("the chart the ApplicationSet installs is not in the repository: %v", err)
		}
		var meta struct{ Name string }
		if err := yaml.Unmarshal(chart, &meta); err != nil || meta.Name != "iomt-operator" {
			t.Errorf("%s/Chart.yaml names chart %q (%v), want iomt-operator", chartPath,
				meta.Name, err)
		}
		if app.Destination.Namespace != "iomt-system" {
			t.Errorf("destination namespace %s, want iomt-system", app.Destination.Namespace)
		}
		for _, opt := range []string{"CreateNamespace=true", "ServerSideApply=true",
			"RespectIgnoreDifferences=true"} {
			if !slices.Contains(app.SyncPolicy.SyncOptions, opt) {
				t.Errorf("syncOptions lack %s", opt)
			}
		}
		if app.SyncPolicy.Automated != nil {
			t.Error("RollingSync turns automated sync off; the template should not ask for it")
		}
		webhooks := []string{"MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"}
		for _, kind := range webhooks {
			ignored := slices.ContainsFunc(app.IgnoreDifferences, func(d ignoreDifference) bool {
				return d.Group == "admissionregistration.k8s.io" && d.Kind == kind &&
					slices.Contains(d.JQPathExpressions, webhookCABundle)
			})
			if !ignored {
				t.Errorf("ignoreDifferences does not cover %s %s", kind, webhookCABundle)
			}
		}

		// Every Application lands in exactly one step, the pilot clinic in
		// the first.
		if spec.Strategy == nil || spec.Strategy.Type != "RollingSync" ||
			len(spec.Strategy.RollingSync.Steps) < 2 {
			t.Fatal("want a RollingSync strategy of at least two steps")
		}
		for i, cluster := range clusters {
			set := renderLabels(t, spec.Template.Metadata.Labels, cluster)
			var steps []int
			for j, step := range spec.Strategy.RollingSync.Steps {
				sel, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{
					MatchExpressions: step.MatchExpressions})
				if err != nil {
					t.Fatalf("step %d: %v", j, err)
				}
				if sel.Matches(set) {
					steps = append(steps, j)
				}
			}
			if len(steps) != 1 {
				t.Errorf("%s (labels %v) is in steps %v, want exactly one", cluster["name"], set,
					steps)
			}
			if i == 0 && !slices.Equal(steps, []int{0}) {
				t.Errorf("the pilot clinic is in steps %v, want the first", steps)
			}
		}
	})

	t.Run("inventory", func(t *testing.T) {
		app := sets["iomt-inventory"].Spec.Template.Spec
		for _, cluster := range clusters {
			clusterLabels := cluster["metadata"].(map[string]any)["labels"].(map[string]string)
			site := clusterLabels["iomt.medinaii.io/site"]
			if got := render(t, app.Source.Path, cluster); got != "clinics/"+site {
				t.Errorf("path %s, want clinics/%s", got, site)
			}
		}
		if !slices.Contains(app.SyncPolicy.SyncOptions, "SkipDryRunOnMissingResource=true") {
			t.Error("syncOptions lack SkipDryRunOnMissingResource=true")
		}
		if app.SyncPolicy.Automated == nil || app.SyncPolicy.Automated.Prune {
			t.Error("want automated sync without pruning")
		}
	})
}
