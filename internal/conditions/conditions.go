// Package conditions sets status conditions the same way everywhere.
package conditions

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Set records a condition stamped with the object's generation. The
// transition time moves only when the status changes, so setting the same
// condition again changes nothing.
func Set(conds *[]metav1.Condition, generation int64, typ string, status metav1.ConditionStatus,
	reason, message string) {
	meta.SetStatusCondition(conds, metav1.Condition{
		Type:               typ,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: generation,
	})
}

// Changed reports whether typ differs in status or reason between two
// condition lists; it tells callers when to emit an Event.
func Changed(before, after []metav1.Condition, typ string) bool {
	b, a := meta.FindStatusCondition(before, typ), meta.FindStatusCondition(after, typ)
	if a == nil {
		return false
	}
	return b == nil || b.Status != a.Status || b.Reason != a.Reason
}

// Status returns a condition's status, Unknown when it is missing.
func Status(conds []metav1.Condition, typ string) metav1.ConditionStatus {
	if c := meta.FindStatusCondition(conds, typ); c != nil {
		return c.Status
	}
	return metav1.ConditionUnknown
}
