package identity

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Namespaces are the namespaces where device identities are issued: nil
// for every namespace, an empty list for none, otherwise those listed.
// Kubernetes RBAC cannot narrow Secret reads by label, so the operator is
// granted Secrets only where it issues identities.
type Namespaces []string

// ParseNamespaces reads a comma-separated list of namespace names: "*" is
// every namespace and an empty value none. Spaces around names and repeats
// are dropped.
func ParseNamespaces(value string) (Namespaces, error) {
	value = strings.TrimSpace(value)
	switch value {
	case "*":
		return nil, nil
	case "":
		return Namespaces{}, nil
	}

	var out Namespaces
	for name := range strings.SplitSeq(value, ",") {
		name = strings.TrimSpace(name)
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, out.Validate()
}

// Validate reports the first name that is not a namespace name.
func (n Namespaces) Validate() error {
	for _, ns := range n {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return fmt.Errorf("%q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
	}
	return nil
}

// Include reports whether identities are issued in namespace ns.
func (n Namespaces) Include(ns string) bool {
	return n == nil || slices.Contains(n, ns)
}
