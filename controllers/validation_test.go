package controllers_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// apply creates an object from YAML as kubectl apply would and returns the
// API server's answer.
func apply(ctx context.Context, ns, manifest string) error {
	var obj unstructured.Unstructured
	Expect(yaml.Unmarshal([]byte(manifest), &obj.Object)).To(Succeed())
	obj.SetNamespace(ns)
	return k8s.Create(ctx, &obj)
}

const validDevice = `
apiVersion: iomt.medinaii.io/v1alpha1
kind: MedicalDevice
metadata: {name: pump-1}
spec:
  class: InfusionPump
  criticality: LifeSustaining
  manufacturer: Baxter
  model: Sigma Spectrum
  addresses: [10.20.1.15, 10.20.2.0/28]
  protocols: [{name: HL7MLLP}, {name: DICOM, port: 11112}, {port: 8443}]
`

const validSegment = `
apiVersion: iomt.medinaii.io/v1alpha1
kind: SegmentPolicy
metadata: {name: pumps}
spec:
  deviceSelector: {classes: [InfusionPump]}
  flows:
  - name: to-ehr
    direction: Egress
    peers: [{cidr: {cidr: 10.40.0.0/16, except: [10.40.9.0/24]}}]
    protocols: [{name: HL7MLLP}]
`

var _ = Describe("API validation", func() {
	var ns string
	BeforeEach(func(ctx context.Context) { ns = newNamespace(ctx) })

	It("should accept the well-formed device and segment", func(ctx context.Context) {
		Expect(apply(ctx, ns, validDevice)).To(Succeed())
		Expect(apply(ctx, ns, validSegment)).To(Succeed())
	})

	DescribeTable("should refuse a MedicalDevice and name the field",
		func(ctx context.Context, manifest, field, words string) {
			err := apply(ctx, ns, manifest)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(field))
			Expect(err.Error()).To(ContainSubstring(words))
		},
		Entry("when an address is not an IP or CIDR", replace(validDevice,
			"10.20.1.15,", "10.20.1.300,"), "spec.addresses[0]", "must be an IP address"),
		Entry("when a CIDR has host bits set", replace(validDevice,
			"10.20.2.0/28", "10.20.2.1/28"), "spec.addresses[1]", "no host bits"),
		Entry("when a port is 0", replace(validDevice,
			"{port: 8443}", "{port: 0}"), "spec.protocols[2].port", "greater than or equal to 1"),
		Entry("when a port is 70000", replace(validDevice,
			"{port: 8443}", "{port: 70000}"), "spec.protocols[2].port", "less than or equal to 65535"),
		Entry("when the protocol is unknown", replace(validDevice,
			"{name: HL7MLLP}", "{name: Telnet}"), "spec.protocols[0].name", "Unsupported value"),
		Entry("when the device class is unknown", replace(validDevice,
			"class: InfusionPump", "class: Toaster"), "spec.class", "Unsupported value"),
		Entry("when an explicit port contradicts its protocol", replace(validDevice,
			"{name: DICOM, port: 11112}", "{name: DICOM, port: 2575}"),
			"spec.protocols[1].port", "port is not a port of the named protocol"),
		Entry("when a named protocol is given a transport", replace(validDevice,
			"{name: HL7MLLP}", "{name: HL7MLLP, transport: UDP}"),
			"spec.protocols[0].transport", "transport is taken from the named protocol"),
		Entry("when an address range would open a whole network", replace(validDevice,
			"10.20.2.0/28", "10.0.0.0/8"), "spec.addresses[1]", "at least /24"),
		Entry("when an address is everything", replace(validDevice,
			"10.20.2.0/28", "0.0.0.0/0"), "spec.addresses[1]", "at least /24"),
		Entry("when the certificate would name the operator's attestation endpoint", replace(validDevice,
			"model: Sigma Spectrum", "model: Sigma Spectrum\n"+
				"  identity: {dnsNames: [iomt-operator-attestation.iomt-system.svc]}"),
			"spec.identity.dnsNames[0]", "must not name the operator's own services"),
		Entry("when the name is too long to be a pod label value", replace(validDevice,
			"name: pump-1", "name: pump-"+longName), "metadata.name", "at most 63 characters"),
	)

	DescribeTable("should refuse a SegmentPolicy and name the field",
		func(ctx context.Context, manifest, field, words string) {
			err := apply(ctx, ns, manifest)
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring(field))
			Expect(err.Error()).To(ContainSubstring(words))
		},
		Entry("when a flow has no peers", replace(validSegment,
			"peers: [{cidr: {cidr: 10.40.0.0/16, except: [10.40.9.0/24]}}]", "peers: []"),
			"spec.flows[0].peers", "at least 1"),
		Entry("when a flow has no protocols", replace(validSegment,
			"protocols: [{name: HL7MLLP}]", "protocols: []"), "spec.flows[0].protocols", "at least 1"),
		Entry("when a CIDR is malformed", replace(validSegment,
			"cidr: 10.40.0.0/16", "cidr: 10.40.0.0/33"), "spec.flows[0].peers[0].cidr.cidr", "must be a CIDR"),
		Entry("when an except lies outside the CIDR", replace(validSegment,
			"except: [10.40.9.0/24]", "except: [10.41.9.0/24]"),
			"spec.flows[0].peers[0].cidr.except", "strictly inside cidr"),
		Entry("when an IPv6 except is the whole CIDR written another way", replace(validSegment,
			"cidr: 10.40.0.0/16, except: [10.40.9.0/24]", `cidr: "fd00::/8", except: ["fd00:0::/8"]`),
			"spec.flows[0].peers[0].cidr.except", "strictly inside cidr"),
		Entry("when the name collides with the operator's quarantine policy names", replace(validSegment,
			"name: pumps", "name: pumps-restricted"), "metadata.name", "must not end in -restricted"),
		Entry("when a port is 70000", replace(validSegment,
			"protocols: [{name: HL7MLLP}]", "protocols: [{port: 70000}]"),
			"spec.flows[0].protocols[0].port", "less than or equal to 65535"),
		Entry("when an explicit port contradicts its protocol", replace(validSegment,
			"protocols: [{name: HL7MLLP}]", "protocols: [{name: FHIR, port: 80}]"),
			"spec.flows[0].protocols[0].port", "port is not a port of the named protocol"),
		Entry("when a peer names two kinds at once", replace(validSegment,
			"peers: [{cidr: {cidr: 10.40.0.0/16, except: [10.40.9.0/24]}}]",
			"peers: [{cidr: {cidr: 10.40.0.0/16}, segment: {name: ehr}}]"),
			"spec.flows[0].peers[0]", "exactly one of segment, pods or cidr"),
		Entry("when the device selector is empty", replace(validSegment,
			"deviceSelector: {classes: [InfusionPump]}", "deviceSelector: {}"),
			"spec.deviceSelector", "needs labels, classes or both"),
		Entry("when a selector requirement has no values", replace(validSegment,
			"deviceSelector: {classes: [InfusionPump]}",
			"deviceSelector: {labels: {matchExpressions: [{key: ward, operator: In}]}}"),
			"spec.deviceSelector.labels.matchExpressions[0]", "In and NotIn need at least one value"),
		Entry("when a selector key is not a label key", replace(validSegment,
			"deviceSelector: {classes: [InfusionPump]}",
			`deviceSelector: {labels: {matchExpressions: [{key: "bad key", operator: Exists}]}}`),
			"spec.deviceSelector.labels.matchExpressions[0].key", "should match"),
		Entry("when a pod selector value is not a label value", replace(validSegment,
			"peers: [{cidr: {cidr: 10.40.0.0/16, except: [10.40.9.0/24]}}]",
			`peers: [{pods: {podSelector: {matchLabels: {app: "not a value!"}}}}]`),
			"spec.flows[0].peers[0].pods.podSelector.matchLabels.app", "should match"),
		Entry("when the device class is unknown", replace(validSegment,
			"classes: [InfusionPump]", "classes: [Toaster]"), "spec.deviceSelector.classes[0]",
			"Unsupported value"),
		Entry("when the direction is unknown", replace(validSegment,
			"direction: Egress", "direction: Sideways"), "spec.flows[0].direction", "Unsupported value"),
	)
})

const longName = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func replace(s, old, repl string) string {
	out := s
	ExpectWithOffset(1, out).To(ContainSubstring(old))
	return stringsReplace(out, old, repl)
}
