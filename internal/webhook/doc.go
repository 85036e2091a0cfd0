// Package webhook holds the operator's admission webhooks for pods that act
// for a MedicalDevice, and what they need to be reachable.
//
//   - IdentityInjector (mutating, pod creation) mounts the device identity,
//     one projected volume of the device's Secret and the namespace's trust
//     bundle, into every app container and adds the verifier as a native
//     sidecar, in the namespaces where the operator issues identities. It
//     edits the pod as raw JSON and adds only what is missing, so fields it
//     does not know survive and a second call changes nothing.
//   - WorkloadBinding (validating, pod creation and relabelling) admits a
//     device pod only when its MedicalDevice exists and names the pod's
//     service account.
//   - MutatingConfiguration and ValidatingConfiguration build the webhook
//     configurations the Helm chart installs; a test keeps the two equal.
//   - CertRotator issues, stores, rotates and publishes the webhook
//     server's serving certificate when cert-manager does not.
//
// SetupWebhooks wires all of it into a manager whose webhook server comes
// from NewServer.
package webhook
