package argocd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/medinaii/iomt-operator/test/clinic"
	"github.com/medinaii/iomt-operator/test/helmtest"
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
	Project     string              `json:"project"`
	Source      *applicationSource  `json:"source"`
	Sources     []applicationSource `json:"sources"`
	Destination struct {
		Server    string `json:"server"`
		Namespace string `json:"namespace"`
	} `json:"destination"`
	SyncPolicy struct {
		Automated *struct {
			Prune    bool `json:"prune"`
			SelfHeal bool `json:"selfHeal"`
		} `json:"automated"`
		ManagedNamespaceMetadata *struct {
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"managedNamespaceMetadata"`
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

type applicationSource struct {
	RepoURL        string `json:"repoURL"`
	TargetRevision string `json:"targetRevision"`
	Path           string `json:"path"`
	Ref            string `json:"ref"`
	Helm           *struct {
		ReleaseName             string   `json:"releaseName"`
		ValueFiles              []string `json:"valueFiles"`
		IgnoreMissingValueFiles bool     `json:"ignoreMissingValueFiles"`
	} `json:"helm"`
	Directory *struct {
		Exclude string `json:"exclude"`
	} `json:"directory"`
}

type ignoreDifference struct {
	Group             string   `json:"group"`
	Kind              string   `json:"kind"`
	Name              string   `json:"name"`
	JQPathExpressions []string `json:"jqPathExpressions"`
}

// clusters are the parameters the cluster generator would give two clinic
// clusters: one in the pilot wave and one that names no wave. Their sites
// are the two in clinics/.
var clusters = []map[string]any{
	{"name": "clinic-a", "nameNormalized": "clinic-a", "server": "https://10.1.0.1:6443",
		"metadata": map[string]any{"annotations": map[string]string{}, "labels": map[string]string{
			"iomt.medinaii.io/clinic": "true", "iomt.medinaii.io/site": "clinic-a",
			"iomt.medinaii.io/wave": "pilot"}}},
	{"name": "clinic_b", "nameNormalized": "clinic-b", "server": "https://10.2.0.1:6443",
		"metadata": map[string]any{"annotations": map[string]string{}, "labels": map[string]string{
			"iomt.medinaii.io/clinic": "true", "iomt.medinaii.io/site": "clinic-b"}}},
}

const (
	webhookCABundle = ".webhooks[]?.clientConfig.caBundle"
	chartPath       = "charts/iomt-operator"
	// valuesRef names the source whose repository the chart's valueFiles
	// read, as $values/<path>.
	valuesRef = "values"
	// exampleRegistry is where the example's values say the images are.
	exampleRegistry = "registry.example-hospital.org/iomt/"
	restricted      = "pod-security.kubernetes.io/enforce"
)

// valuesRoot stands for the root of the values repository, the one the
// source with ref: values names: $values/clinics/clinic-a/operator-values.yaml
// in the ApplicationSet is clinics/clinic-a/operator-values.yaml in this
// folder, deploy/argocd. The inventory Application reads the same repository,
// so its clinics/<site> is here too.
const valuesRoot = "."

func site(cluster map[string]any) string {
	return cluster["metadata"].(map[string]any)["labels"].(map[string]string)["iomt.medinaii.io/site"]
}

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
		chartSource, valuesSource := operatorSources(t, app)
		if !strings.Contains(chartSource.RepoURL, "example") {
			t.Errorf("chart source %s: want the example repository", chartSource.RepoURL)
		}
		if chartSource.Helm == nil || chartSource.Helm.ReleaseName != "iomt-operator" {
			t.Error("want the chart installed as release iomt-operator")
		} else if chartSource.Helm.IgnoreMissingValueFiles {
			t.Error("a site without its values file must fail to render, not install an " +
				"operator that issues no identities")
		}
		if valuesSource.Path != "" || valuesSource.Helm != nil {
			t.Errorf("the %s source should only be read for values files", valuesRef)
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
		if m := app.SyncPolicy.ManagedNamespaceMetadata; m == nil || m.Labels[restricted] != "restricted" {
			t.Errorf("managedNamespaceMetadata does not label iomt-system %s=restricted", restricted)
		}
		// The device namespaces come from the inventory Application; until
		// they exist, the sync fails and is retried.
		if r := app.SyncPolicy.Retry; r.Limit == 0 || r.Backoff.Duration == "" {
			t.Error("want retries with backoff while the device namespaces are missing")
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
		if app.Source == nil || len(app.Sources) != 0 {
			t.Fatal("want the inventory from a single source")
		}
		for _, cluster := range clusters {
			if got := render(t, app.Source.Path, cluster); got != "clinics/"+site(cluster) {
				t.Errorf("path %s, want clinics/%s", got, site(cluster))
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

// operatorSources returns the operator Application's two sources: the chart,
// and the repository its values files are read from.
func operatorSources(t *testing.T, app applicationSpec) (chart, values applicationSource) {
	t.Helper()
	if app.Source != nil {
		t.Error("the operator Application has sources; Argo CD would ignore its source")
	}
	if len(app.Sources) != 2 {
		t.Fatalf("%d sources, want the chart and the values repository", len(app.Sources))
	}
	var foundChart, foundValues bool
	for _, s := range app.Sources {
		switch {
		case s.Path == chartPath:
			chart, foundChart = s, true
		case s.Ref == valuesRef:
			values, foundValues = s, true
		}
	}
	if !foundChart || !foundValues {
		t.Fatalf("want one source with path %s and one with ref %s", chartPath, valuesRef)
	}
	return chart, values
}

// The operator's values come from the same repository as the inventory, so a
// site's deviceNamespaces and the Namespaces that must exist before the chart
// binds a Role in them are kept side by side, in clinics/<site>.
func TestOperatorValuesMatchTheInventory(t *testing.T) {
	sets := readApplicationSets(t)
	operator := sets["iomt-operator"].Spec.Template.Spec
	inventory := sets["iomt-inventory"].Spec.Template.Spec
	chartSource, valuesSource := operatorSources(t, operator)
	if inventory.Source == nil {
		t.Fatal("the inventory ApplicationSet has no source")
	}
	if valuesSource.RepoURL != inventory.Source.RepoURL ||
		valuesSource.TargetRevision != inventory.Source.TargetRevision {
		t.Fatalf("values from %s@%s, inventory from %s@%s: want the same repository",
			valuesSource.RepoURL, valuesSource.TargetRevision, inventory.Source.RepoURL,
			inventory.Source.TargetRevision)
	}
	validated := map[string]bool{}
	for _, cluster := range clusters {
		t.Run(site(cluster), func(t *testing.T) {
			files := valueFiles(t, chartSource, cluster)
			want := []string{
				filepath.Join(valuesRoot, "clinics", "common", "operator-values.yaml"),
				filepath.Join(valuesRoot, "clinics", site(cluster), "operator-values.yaml"),
			}
			if !slices.Equal(files, want) {
				t.Errorf("values files %v, want %v: the common ones, then the site's", files, want)
			}

			// Each file on its own passes the chart's values.schema.json,
			// which helm template checks.
			for _, f := range files {
				if validated[f] {
					continue
				}
				validated[f] = true
				if out, err := helm(t, "template", "iomt-operator", filepath.Join("..", "..", chartPath),
					"--values", f); err != nil {
					t.Errorf("%s does not fit the chart's values schema: %v\n%s", f, err, out)
				}
			}

			// Together they name the example registry's images and the
			// site's device namespaces.
			pod := operatorPod(t, chartSource.Helm.ReleaseName, operator.Destination.Namespace, files)
			if img := pod.Containers[0].Image; !strings.HasPrefix(img, exampleRegistry+"iomt-operator:") {
				t.Errorf("operator image %s, want %siomt-operator", img, exampleRegistry)
			}
			verifier := flag(pod.Containers[0].Args, "--verifier-image")
			if !strings.HasPrefix(verifier, exampleRegistry+"iomt-verifier:") {
				t.Errorf("verifier image %q, want %siomt-verifier", verifier, exampleRegistry)
			}
			namespaces := flag(pod.Containers[0].Args, "--device-namespaces")
			if namespaces == "" || namespaces == "*" {
				t.Fatalf("--device-namespaces=%s: want the site's device namespaces", namespaces)
			}

			// The inventory creates each of them in a wave before its
			// devices.
			dir := filepath.Join(valuesRoot, filepath.FromSlash(render(t, inventory.Source.Path, cluster)))
			created := inventoryNamespaces(t, dir, inventory.Source)
			for _, ns := range strings.Split(namespaces, ",") {
				wave, ok := created[ns]
				switch {
				case !ok:
					t.Errorf("device namespace %s has no Namespace in %s", ns, dir)
				case wave >= 0:
					t.Errorf("Namespace %s is in sync wave %d, want an early one (below 0)", ns, wave)
				}
			}
		})
	}
}

// valueFiles renders the chart source's valueFiles for cluster and maps each
// $values/<path> to valuesRoot/<path>, failing when the file is missing.
func valueFiles(t *testing.T, chart applicationSource, cluster map[string]any) []string {
	t.Helper()
	if chart.Helm == nil || len(chart.Helm.ValueFiles) == 0 {
		t.Fatal("the chart source names no values files")
	}
	var files []string
	for _, v := range chart.Helm.ValueFiles {
		rel, ok := strings.CutPrefix(render(t, v, cluster), "$"+valuesRef+"/")
		if !ok {
			t.Errorf("values file %s is not read from $%s", v, valuesRef)
			continue
		}
		f := filepath.Join(valuesRoot, filepath.FromSlash(rel))
		if _, err := os.Stat(f); err != nil {
			t.Errorf("values file %s of site %s: %v", v, site(cluster), err)
			continue
		}
		files = append(files, f)
	}
	return files
}

// inventoryNamespaces reads the inventory folder dir as Argo CD would, leaving
// out the files the source excludes, and returns its Namespaces with their
// sync waves.
func inventoryNamespaces(t *testing.T, dir string, source *applicationSource) map[string]int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	exclude := ""
	if source.Directory != nil {
		exclude = source.Directory.Exclude
	}
	if ok, _ := path.Match(exclude, "operator-values.yaml"); !ok {
		t.Errorf("the inventory reads operator-values.yaml as manifests; exclude is %q", exclude)
	}
	out := map[string]int{}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		if ok, _ := path.Match(exclude, e.Name()); ok {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, obj := range decodeObjects(t, data, filepath.Join(dir, e.Name())) {
			if obj.GetAPIVersion() != "v1" || obj.GetKind() != "Namespace" {
				continue
			}
			wave := 0
			if w, ok := obj.GetAnnotations()["argocd.argoproj.io/sync-wave"]; ok {
				if wave, err = strconv.Atoi(w); err != nil {
					t.Errorf("Namespace %s: sync wave %q: %v", obj.GetName(), w, err)
				}
			}
			out[obj.GetName()] = wave
		}
	}
	return out
}

// operatorPod renders the chart with the given values files as Argo CD
// would, and returns the operator Deployment's pod.
func operatorPod(t *testing.T, release, namespace string, files []string) corev1.PodSpec {
	t.Helper()
	args := []string{"template", release, filepath.Join("..", "..", chartPath), "--namespace", namespace}
	for _, f := range files {
		args = append(args, "--values", f)
	}
	out, err := helm(t, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, obj := range decodeObjects(t, []byte(out), "helm template") {
		if obj.GetKind() != "Deployment" || obj.GetName() != "iomt-operator" {
			continue
		}
		var dep appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, &dep); err != nil {
			t.Fatal(err)
		}
		if len(dep.Spec.Template.Spec.Containers) == 0 {
			t.Fatal("the operator Deployment has no containers")
		}
		return dep.Spec.Template.Spec
	}
	t.Fatal("the chart renders no Deployment iomt-operator")
	return corev1.PodSpec{}
}

// flag returns the value of --name=value in args, or "".
func flag(args []string, name string) string {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

func decodeObjects(t *testing.T, data []byte, source string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := clinic.DecodeManifests(data, source)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// helm runs the pinned Helm.
func helm(t *testing.T, args ...string) (string, error) {
	t.Helper()
	return helmtest.Run(t, args...)
}
