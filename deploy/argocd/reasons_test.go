package argocd

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// notOnReady are the reasons the operator never gives a False Ready
// condition of each kind: those of other condition types, and that of a
// True Ready. Every other reason in api/v1alpha1 must be classified by the
// kind's health check, so a reason added to the API fails the test below
// until someone decides what it means in Argo CD.
var notOnReady = map[string][]string{
	"MedicalDevice": {
		iomtv1.ReasonSegmented, // Ready True
		// IdentityIssued True.
		iomtv1.ReasonIssued, iomtv1.ReasonRenewed, iomtv1.ReasonRotated,
		// Quarantined: Ready says Quarantined instead.
		iomtv1.ReasonManual, iomtv1.ReasonIsolationNotApproved, iomtv1.ReasonKnownVulnerable,
		iomtv1.ReasonHealthy,
		// Vulnerable.
		iomtv1.ReasonKnownAffected, iomtv1.ReasonNeedsReview, iomtv1.ReasonNoKnownAdvisory,
		// Verified: only a failed verification reaches Ready.
		iomtv1.ReasonVerificationPending, iomtv1.ReasonVerificationPassed,
		iomtv1.ReasonVerificationFailing, iomtv1.ReasonReleased,
		// SegmentPolicy only.
		iomtv1.ReasonEnforced, iomtv1.ReasonNoMembers, iomtv1.ReasonOverlappingSegments,
		iomtv1.ReasonNoOverlap, iomtv1.ReasonUnresolvedPeers, iomtv1.ReasonReconciled,
		iomtv1.ReasonApplyFailed, iomtv1.ReasonInvalidSpec, iomtv1.ReasonAllEnforceable,
		iomtv1.ReasonNeedsCilium, iomtv1.ReasonRejectedRule,
	},
	"SegmentPolicy": {
		iomtv1.ReasonReconciled, // Ready True
		// Enforced, Conflict and Enforceable.
		iomtv1.ReasonEnforced, iomtv1.ReasonObserving, iomtv1.ReasonNoMembers,
		iomtv1.ReasonNoOverlap, iomtv1.ReasonAllEnforceable,
		// MedicalDevice only.
		iomtv1.ReasonSegmented, iomtv1.ReasonNoSegment, iomtv1.ReasonSegmentConflict,
		iomtv1.ReasonIssued, iomtv1.ReasonRenewed, iomtv1.ReasonRotated, iomtv1.ReasonIssueFailed,
		iomtv1.ReasonSecretConflict, iomtv1.ReasonCertificatePending,
		iomtv1.ReasonCertManagerMissing, iomtv1.ReasonNamespaceNotEnrolled, iomtv1.ReasonManual,
		iomtv1.ReasonIsolationNotApproved,
		iomtv1.ReasonHealthy, iomtv1.ReasonQuarantined, iomtv1.ReasonKnownAffected,
		iomtv1.ReasonNeedsReview, iomtv1.ReasonNoKnownAdvisory, iomtv1.ReasonKnownVulnerable,
		iomtv1.ReasonVerificationPending, iomtv1.ReasonVerificationPassed,
		iomtv1.ReasonVerificationFailing, iomtv1.ReasonVerificationFailed, iomtv1.ReasonReleased,
	},
}

// apiReasons returns the value of every Reason constant in api/v1alpha1,
// read from the source so that a new one cannot go unnoticed.
func apiReasons(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("../../api/v1alpha1/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("no API sources: %v", err)
	}
	var reasons []string
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range f.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.CONST {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, "Reason") {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: %s is not a string literal", file, name.Name)
					}
					value, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					reasons = append(reasons, value)
				}
			}
		}
	}
	if len(reasons) == 0 {
		t.Fatal("no Reason constants found in api/v1alpha1")
	}
	return reasons
}

// readyFalse reads the script's readyFalse table.
func readyFalse(t *testing.T, c HealthCheck) map[string]string {
	t.Helper()
	out := map[string]string{}
	_, err := evalHealth(c.Script, map[string]any{}, func(l *lua.LState) {
		table, ok := l.GetGlobal("readyFalse").(*lua.LTable)
		if !ok {
			t.Fatal("the script defines no global table readyFalse")
		}
		table.ForEach(func(k, v lua.LValue) {
			out[k.String()] = v.String()
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestEveryReasonIsClassified holds each script's classification of a
// False Ready against the reasons the API defines, and checks the script
// acts on it.
func TestEveryReasonIsClassified(t *testing.T) {
	reasons := apiReasons(t)
	for _, c := range healthChecks(t) {
		t.Run(c.Kind, func(t *testing.T) {
			classified := readyFalse(t, c)
			skipped, ok := notOnReady[c.Kind]
			if !ok {
				t.Fatalf("notOnReady has no entry for %s", c.Kind)
			}
			for reason, health := range classified {
				if !slices.Contains(reasons, reason) {
					t.Errorf("readyFalse names %q, which api/v1alpha1 does not define", reason)
				}
				if !slices.Contains(statuses, health) {
					t.Errorf("readyFalse maps %s to %q, not one of %v", reason, health, statuses)
				}
				if slices.Contains(skipped, reason) {
					t.Errorf("%s is classified and also listed in notOnReady", reason)
				}
			}
			for _, reason := range reasons {
				if _, ok := classified[reason]; !ok && !slices.Contains(skipped, reason) {
					t.Errorf("reason %s is neither classified by the script nor listed in "+
						"notOnReady[%q]", reason, c.Kind)
				}
			}

			for reason, health := range classified {
				got, err := evalHealth(c.Script, readyFalseObject(reason), nil)
				if err != nil {
					t.Fatal(err)
				}
				if got.Status != health {
					t.Errorf("Ready False %s: got %s, want %s", reason, got.Status, health)
				}
			}
		})
	}
}

// readyFalseObject is a current, unquarantined object whose Ready
// condition is False for reason.
func readyFalseObject(reason string) map[string]any {
	return map[string]any{
		"metadata": map[string]any{"generation": 1.0},
		"status": map[string]any{
			"observedGeneration": 1.0,
			"quarantine":         map[string]any{"state": "None"},
			"conditions": []any{map[string]any{
				"type": "Ready", "status": "False", "observedGeneration": 1.0,
				"reason": reason, "message": "something happened",
			}},
		},
	}
}
