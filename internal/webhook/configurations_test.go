package webhook

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

var manifestsPath = filepath.Join("..", "..", "config", "webhook", "configurations.yaml")

// TestManifestsMatchBuilders keeps the webhooks that users install (written
// from the Helm chart) and the Go builders the tests install the same.
func TestManifestsMatchBuilders(t *testing.T) {
	opts := Options{}
	mwc, vwc := MutatingConfiguration(opts), ValidatingConfiguration(opts)

	raw, err := os.ReadFile(manifestsPath)
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(raw), "\n---\n")
	if len(docs) != 2 {
		t.Fatalf("%d documents, want 2", len(docs))
	}
	var gotM admissionregistrationv1.MutatingWebhookConfiguration
	var gotV admissionregistrationv1.ValidatingWebhookConfiguration
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &gotM); err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &gotV); err != nil {
		t.Fatal(err)
	}
	if gotM.Name != mwc.Name || !reflect.DeepEqual(gotM.Webhooks, mwc.Webhooks) {
		t.Errorf("%s's MutatingWebhookConfiguration differs from MutatingConfiguration(); "+
			"change the chart's templates/webhook/configurations.yaml and run make manifests",
			manifestsPath)
	}
	if gotV.Name != vwc.Name || !reflect.DeepEqual(gotV.Webhooks, vwc.Webhooks) {
		t.Errorf("%s's ValidatingWebhookConfiguration differs from ValidatingConfiguration(); "+
			"change the chart's templates/webhook/configurations.yaml and run make manifests",
			manifestsPath)
	}
}

func TestConfigurations(t *testing.T) {
	opts := Options{OperatorNamespace: "clinic-ops", ServiceName: "hooks", ConfigurationName: "x"}
	m := MutatingConfiguration(opts)
	v := ValidatingConfiguration(opts)
	if m.Name != "x" || v.Name != "x" {
		t.Errorf("names %q %q, want x", m.Name, v.Name)
	}
	mw, vw := m.Webhooks[0], v.Webhooks[0]
	for _, cc := range []admissionregistrationv1.WebhookClientConfig{mw.ClientConfig, vw.ClientConfig} {
		if cc.Service.Namespace != "clinic-ops" || cc.Service.Name != "hooks" || len(cc.CABundle) != 0 {
			t.Errorf("client config %+v", cc)
		}
	}
	for _, ns := range [][]string{mw.NamespaceSelector.MatchExpressions[0].Values,
		vw.NamespaceSelector.MatchExpressions[0].Values} {
		if !reflect.DeepEqual(ns, []string{"kube-system", "clinic-ops"}) {
			t.Errorf("excluded namespaces %v", ns)
		}
	}
	optOut := metav1.LabelSelectorRequirement{
		Key: AdmissionLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"disabled"},
	}
	for _, sel := range []*metav1.LabelSelector{mw.NamespaceSelector, vw.NamespaceSelector} {
		if !slices.ContainsFunc(sel.MatchExpressions, func(r metav1.LabelSelectorRequirement) bool {
			return reflect.DeepEqual(r, optOut)
		}) {
			t.Errorf("namespace selector %v has no opt-out", sel)
		}
	}
	for _, sel := range []string{mw.ObjectSelector.String(), vw.ObjectSelector.String()} {
		if !strings.Contains(sel, iomtv1.DeviceLabel) || !strings.Contains(sel, "Exists") {
			t.Errorf("object selector %s", sel)
		}
	}
	if *mw.FailurePolicy != admissionregistrationv1.Fail ||
		*vw.FailurePolicy != admissionregistrationv1.Fail ||
		*mw.SideEffects != admissionregistrationv1.SideEffectClassNone ||
		*mw.ReinvocationPolicy != admissionregistrationv1.IfNeededReinvocationPolicy ||
		*mw.TimeoutSeconds != 5 || *vw.TimeoutSeconds != 5 {
		t.Errorf("policies differ from fail closed, no side effects, reinvocation if needed, 5s")
	}
	type ops = []admissionregistrationv1.OperationType
	if !reflect.DeepEqual(mw.Rules[0].Operations, ops{"CREATE"}) ||
		!reflect.DeepEqual(vw.Rules[0].Operations, ops{"CREATE", "UPDATE"}) {
		t.Errorf("operations %v %v", mw.Rules[0].Operations, vw.Rules[0].Operations)
	}
}
