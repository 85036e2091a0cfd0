package argocd

import (
	"fmt"
	"os"
	"path"
	"slices"
	"testing"

	lua "github.com/yuin/gopher-lua"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/yaml"
)

// healthStatus is what a health check returns, as Argo CD reads it.
type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// healthTests is a health_test.yaml in the form Argo CD's own repository
// uses: each case names an object under testdata and the health expected
// for it.
type healthTests struct {
	Tests []struct {
		HealthStatus healthStatus `json:"healthStatus"`
		InputPath    string       `json:"inputPath"`
	} `json:"tests"`
}

// statuses are the health statuses the scripts may return. Argo CD also
// knows Missing and Unknown, which it decides itself.
var statuses = []string{"Healthy", "Progressing", "Degraded", "Suspended"}

// evalHealth runs a health check as Health does, and returns what it
// returns in the form health_test.yaml expects. inspect, when not nil, sees
// the Lua state after the script ran.
func evalHealth(script string, obj map[string]any,
	inspect func(*lua.LState)) (healthStatus, error) {
	status, message, err := runHealth(script, obj, inspect)
	if err != nil {
		return healthStatus{}, err
	}
	return healthStatus{Status: status, Message: message}, nil
}

func healthChecks(t *testing.T) []HealthCheck {
	t.Helper()
	checks, err := HealthChecks(os.DirFS("."))
	if err != nil {
		t.Fatal(err)
	}
	if len(checks) == 0 {
		t.Fatalf("no %s found under %s", healthScript, CustomizationsDir)
	}
	return checks
}

func readHealthTests(t *testing.T, c HealthCheck) healthTests {
	t.Helper()
	file := path.Join(c.Dir, "health_test.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("every health check needs its tests: %v", err)
	}
	var tests healthTests
	if err := yaml.UnmarshalStrict(data, &tests); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return tests
}

func readObject(t *testing.T, file string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	// Numbers come out as the API server and Argo CD see them: whole ones
	// as int64.
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var obj map[string]any
	if err := utiljson.Unmarshal(js, &obj); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return obj
}

// fixtures returns the testdata files of a health check.
func fixtures(t *testing.T, c HealthCheck) []string {
	t.Helper()
	entries, err := os.ReadDir(path.Join(c.Dir, "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, path.Join("testdata", e.Name()))
	}
	return files
}

func TestHealthChecks(t *testing.T) {
	for _, c := range healthChecks(t) {
		for _, tc := range readHealthTests(t, c).Tests {
			t.Run(c.Kind+"/"+tc.InputPath, func(t *testing.T) {
				obj := readObject(t, path.Join(c.Dir, tc.InputPath))
				got, err := evalHealth(c.Script, obj, nil)
				if err != nil {
					t.Fatal(err)
				}
				if got != tc.HealthStatus {
					t.Errorf("got\n  %+v\nwant\n  %+v", got, tc.HealthStatus)
				}
			})
		}
	}
}

// TestHealthScriptIsTheOneOnDisk checks that the scripts built into the
// package, which HealthScript gives to tests elsewhere, are every script
// on disk, unchanged.
func TestHealthScriptIsTheOneOnDisk(t *testing.T) {
	for _, c := range healthChecks(t) {
		script, err := HealthScript(c.Kind)
		if err != nil {
			t.Fatal(err)
		}
		if script != c.Script {
			t.Errorf("HealthScript(%q) is not %s/%s", c.Kind, c.Dir, healthScript)
		}
	}
	if _, err := HealthScript("Pod"); err == nil {
		t.Error("HealthScript found a script for Pod")
	}
}

// TestEveryHealthCheckIsTested makes sure no script goes without tests, no
// case is left out and no fixture sits unused.
func TestEveryHealthCheckIsTested(t *testing.T) {
	checks := healthChecks(t)
	for _, c := range checks {
		t.Run(c.Kind, func(t *testing.T) {
			tests := readHealthTests(t, c).Tests
			if len(tests) == 0 {
				t.Fatal("health_test.yaml has no tests")
			}
			used := map[string]bool{}
			for _, tc := range tests {
				if used[tc.InputPath] {
					t.Errorf("%s is tested twice", tc.InputPath)
				}
				used[tc.InputPath] = true
				if !slices.Contains(statuses, tc.HealthStatus.Status) {
					t.Errorf("%s expects status %q, not one of %v", tc.InputPath,
						tc.HealthStatus.Status, statuses)
				}
				if tc.HealthStatus.Message == "" {
					t.Errorf("%s expects no message; every health has one", tc.InputPath)
				}
			}
			files := fixtures(t, c)
			for _, f := range files {
				if !used[f] {
					t.Errorf("%s/%s is in no test of health_test.yaml", c.Dir, f)
				}
			}
			for p := range used {
				if !slices.Contains(files, p) {
					t.Errorf("health_test.yaml names %s, which is not in testdata", p)
				}
			}
		})
	}

	// Tests or fixtures without a script beside them would never run.
	dirs := map[string]bool{}
	for _, c := range checks {
		dirs[c.Dir] = true
	}
	err := walkFiles(CustomizationsDir, func(p string) {
		dir := path.Dir(p)
		if path.Base(dir) == "testdata" {
			dir = path.Dir(dir)
		}
		if !dirs[dir] {
			t.Errorf("%s has no %s beside it", p, healthScript)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

func walkFiles(root string, visit func(string)) error {
	entries, err := os.ReadDir(root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := path.Join(root, e.Name())
		if e.IsDir() {
			if err := walkFiles(p, visit); err != nil {
				return err
			}
			continue
		}
		visit(p)
	}
	return nil
}

// TestHealthChecksSurviveDamagedObjects takes every fixture apart, field by
// field, and checks that each script still answers with a valid health and
// no Lua error: Argo CD shows a script error instead of any health.
func TestHealthChecksSurviveDamagedObjects(t *testing.T) {
	odd := []map[string]any{
		{},
		{"metadata": "x", "status": "x"},
		{"metadata": map[string]any{"generation": "two"}, "status": []any{}},
		{"status": map[string]any{"observedGeneration": 1.0,
			"conditions": map[string]any{"type": "Ready"}}},
		{"status": map[string]any{"observedGeneration": 1.0,
			"conditions": []any{nil, 3.0, "Ready", []any{}}}},
	}
	replacements := []any{"text", 7.0, true, map[string]any{}, []any{"x"}}

	for _, c := range healthChecks(t) {
		t.Run(c.Kind, func(t *testing.T) {
			check := func(obj map[string]any) {
				t.Helper()
				got, err := evalHealth(c.Script, obj, nil)
				if err != nil {
					t.Fatalf("%v\nobject: %v", err, obj)
				}
				if !slices.Contains(statuses, got.Status) || got.Message == "" {
					t.Fatalf("got %+v\nobject: %v", got, obj)
				}
			}
			for _, obj := range odd {
				check(obj)
			}
			for _, f := range fixtures(t, c) {
				fixture := readObject(t, path.Join(c.Dir, f))
				// The scripts read metadata and status only.
				for _, top := range []string{"metadata", "status"} {
					for _, p := range paths(fixture[top], []string{top}) {
						check(damaged(fixture, p, nil))
						for _, r := range replacements {
							check(damaged(fixture, p, r))
						}
					}
				}
			}
		})
	}
}

// paths lists the path of every value within v, v's own included.
func paths(v any, at []string) [][]string {
	out := [][]string{at}
	switch v := v.(type) {
	case map[string]any:
		for k, item := range v {
			out = append(out, paths(item, append(slices.Clone(at), k))...)
		}
	case []any:
		for i, item := range v {
			out = append(out, paths(item, append(slices.Clone(at), fmt.Sprint(i)))...)
		}
	}
	return out
}

// damaged returns a copy of obj with the value at p replaced by r, or
// removed when r is nil.
func damaged(obj map[string]any, p []string, r any) map[string]any {
	out := deepCopy(obj).(map[string]any)
	var parent any = out
	for _, key := range p[:len(p)-1] {
		parent = child(parent, key)
	}
	last := p[len(p)-1]
	switch parent := parent.(type) {
	case map[string]any:
		if r == nil {
			delete(parent, last)
		} else {
			parent[last] = r
		}
	case []any:
		var i int
		fmt.Sscan(last, &i)
		parent[i] = r
	}
	return out
}

func child(v any, key string) any {
	switch v := v.(type) {
	case map[string]any:
		return v[key]
	case []any:
		var i int
		fmt.Sscan(key, &i)
		return v[i]
	}
	return nil
}

func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, item := range v {
			out[k] = deepCopy(item)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, item := range v {
			out[i] = deepCopy(item)
		}
		return out
	}
	return v
}
