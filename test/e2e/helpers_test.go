package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
	"github.com/medinaii/iomt-operator/internal/attest"
	"github.com/medinaii/iomt-operator/internal/segment"
	"github.com/medinaii/iomt-operator/test/clinic"
	"github.com/medinaii/iomt-operator/test/devicesim"
)

// What every device here is meant to run, and the firmware an attacker
// swapped in.
var (
	goodFirmware = attest.Firmware{Version: "8.01.01", SHA256: strings.Repeat("a1", 32)}
	badFirmware  = attest.Firmware{Version: "8.01.01-x", SHA256: strings.Repeat("6e", 32)}
)

// Timing of the checks: the verifier runs every second; the devices say
// 5s, the shortest interval the API takes, which is what the operator
// counts silence by.
const (
	verifierInterval = time.Second
	deviceInterval   = 5 * time.Second
)

// newNamespace creates a namespace named prefix-<random>.
func newNamespace(prefix string) string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: prefix + "-" + rand.String(5)}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// lastPodIP numbers pod IPs in 10.244.0.0/16, which nothing else uses.
var lastPodIP atomic.Uint32

// newPod creates a pod with an IP in status, as a kubelet would.
func newPod(namespace, name string, labels map[string]string) clinic.Endpoint {
	GinkgoHelper()
	n := lastPodIP.Add(1)
	ip := fmt.Sprintf("10.244.%d.%d", n/200, n%200+10)
	// kube-system appears a moment after the API server starts.
	Eventually(func() error {
		_, err := clinic.CreatePod(ctx, k8s, clinic.Pod{Namespace: namespace, Name: name,
			Labels: labels, IP: ip})
		return err
	}).Should(Succeed())
	ep, err := clinic.PodEndpoint(ctx, k8s, namespace, name)
	Expect(err).NotTo(HaveOccurred())
	return ep
}

// segmentSpec is a segment of infusion pumps with an essential flow to the
// EHR (HL7), a flow that is not essential to PACS (DICOM) and a
// remediation flow to the biomedical workstation (TCP 8443).
func newSegment(namespace string, onFailure iomtv1.QuarantineMode, autoRelease int32) {
	GinkgoHelper()
	cidr := func(c string) []iomtv1.Peer { return []iomtv1.Peer{{CIDR: &iomtv1.CIDRPeer{CIDR: c}}} }
	seg := &iomtv1.SegmentPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "pumps"},
		Spec: iomtv1.SegmentPolicySpec{
			DeviceSelector: iomtv1.DeviceSelector{Classes: []iomtv1.DeviceClass{iomtv1.ClassInfusionPump}},
			Flows: []iomtv1.Flow{
				{Name: "ehr", Direction: iomtv1.DirectionEgress, Peers: cidr("10.40.0.0/16"),
					Protocols: []iomtv1.ProtocolPort{{Name: iomtv1.ProtocolHL7MLLP}}, Essential: true},
				{Name: "pacs", Direction: iomtv1.DirectionEgress, Peers: cidr("10.50.0.0/16"),
					Protocols: []iomtv1.ProtocolPort{{Name: iomtv1.ProtocolDICOM}}},
			},
			Quarantine: &iomtv1.QuarantinePolicy{
				OnVerificationFailure: onFailure,
				Remediation: []iomtv1.Flow{{Name: "biomed", Direction: iomtv1.DirectionEgress,
					Peers: cidr("10.60.0.0/16"), Protocols: []iomtv1.ProtocolPort{{Port: ptr.To[int32](8443)}}}},
			},
		},
	}
	if autoRelease > 0 {
		seg.Spec.Quarantine.AutoRelease = &iomtv1.AutoRelease{AfterPasses: autoRelease}
	}
	Expect(k8s.Create(ctx, seg)).To(Succeed())
}

// device is a MedicalDevice with its identity directory, a simulator
// answering for it, and a pod carrying its label.
type device struct {
	key types.NamespacedName
	dir string
	sim *devicesim.Simulator
	pod clinic.Endpoint
}

// newDevice creates an infusion pump that must run goodFirmware, checked
// every deviceInterval, failed after threshold bad or missing reports, and
// starts its simulator running goodFirmware.
func newDevice(namespace, name string, criticality iomtv1.Criticality, threshold int32) *device {
	GinkgoHelper()
	d := &device{key: types.NamespacedName{Namespace: namespace, Name: name}}
	leaf, err := pki.Issue(namespace, name, time.Now().Add(-time.Minute), 24*time.Hour)
	Expect(err).NotTo(HaveOccurred())
	d.dir = filepath.Join(GinkgoT().TempDir(), name)
	Expect(devicesim.WriteAtomically(d.dir, pki.IdentityFiles(leaf))).To(Succeed())
	kp, err := devicesim.KeyPair(leaf)
	Expect(err).NotTo(HaveOccurred())
	d.sim, err = devicesim.Start(devicesim.Config{Certificate: kp, ClientCAs: pki.Pool(),
		Firmware: goodFirmware})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(d.sim.Close)

	fw := iomtv1.Firmware{Version: goodFirmware.Version, SHA256: goodFirmware.SHA256}
	Expect(k8s.Create(ctx, &iomtv1.MedicalDevice{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: iomtv1.MedicalDeviceSpec{
			Class: iomtv1.ClassInfusionPump, Criticality: criticality,
			Manufacturer: "Baxter", Model: "Sigma Spectrum", Firmware: &fw,
			Verification: &iomtv1.Verification{
				Interval:         &metav1.Duration{Duration: deviceInterval},
				FailureThreshold: ptr.To(threshold),
				Endpoint:         d.sim.Addr(),
				FirmwareProbe:    &iomtv1.FirmwareProbe{Type: iomtv1.FirmwareProbeHTTPSJSON},
			},
		},
	})).To(Succeed())
	d.pod = newPod(namespace, name+"-adapter", map[string]string{iomtv1.DeviceLabel: name})
	return d
}

// status reads the device's status for Eventually.
func (d *device) status() func(Gomega) iomtv1.MedicalDeviceStatus {
	return func(g Gomega) iomtv1.MedicalDeviceStatus {
		var md iomtv1.MedicalDevice
		g.Expect(k8s.Get(ctx, d.key, &md)).To(Succeed())
		return md.Status
	}
}

// annotate sets an annotation on the device.
func (d *device) annotate(key, value string) {
	GinkgoHelper()
	Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var md iomtv1.MedicalDevice
		if err := k8s.Get(ctx, d.key, &md); err != nil {
			return err
		}
		if md.Annotations == nil {
			md.Annotations = map[string]string{}
		}
		md.Annotations[key] = value
		return k8s.Update(ctx, &md)
	})).To(Succeed())
}

// verifiedIn matches a status whose verification passed, with the
// Verified condition True.
func verified() OmegaMatcher {
	return And(
		HaveField("Verification.State", iomtv1.VerificationVerified),
		WithTransform(func(st iomtv1.MedicalDeviceStatus) metav1.ConditionStatus {
			if c := meta.FindStatusCondition(st.Conditions, iomtv1.ConditionVerified); c != nil {
				return c.Status
			}
			return ""
		}, Equal(metav1.ConditionTrue)),
	)
}

// quarantined matches a status held by failed verification in state q.
func quarantined(q iomtv1.QuarantineState) OmegaMatcher {
	return And(
		HaveField("Verification.State", iomtv1.VerificationFailed),
		HaveField("Quarantine.State", q),
		HaveField("Quarantine.Reason", iomtv1.ReasonVerificationFailed),
	)
}

// free matches a status that nothing quarantines.
func free() OmegaMatcher {
	return And(verified(), HaveField("Quarantine.State", iomtv1.QuarantineNone))
}

// verifierProcess is a verifier running as its own process.
type verifierProcess struct {
	cmd        *exec.Cmd
	healthAddr string
	mu         sync.Mutex
	log        bytes.Buffer
	exited     chan struct{}
}

func (p *verifierProcess) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.Write(b)
}

// logs is what the verifier wrote so far.
func (p *verifierProcess) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// startVerifier runs the verifier for the device with its identity, every
// verifierInterval, probing the device's simulator; extra flags follow.
func startVerifier(d *device, extra ...string) *verifierProcess {
	GinkgoHelper()
	p := &verifierProcess{healthAddr: fmt.Sprintf("127.0.0.1:%d", freePort()),
		exited: make(chan struct{})}
	args := append([]string{
		"--identity-dir=" + d.dir,
		"--attestation-url=" + attestationURL,
		"--interval=" + verifierInterval.String(),
		"--endpoint=" + d.sim.Addr(),
		"--firmware-probe=https-json",
		"--health-addr=" + p.healthAddr,
		"--trust-domain=" + trustDomain,
	}, extra...)
	p.cmd = exec.Command(verifierBin, args...)
	prefix := fmt.Sprintf("[verifier %s] ", d.key)
	p.cmd.Stdout = io.MultiWriter(p, prefixWriter{prefix, GinkgoWriter})
	p.cmd.Stderr = p.cmd.Stdout
	Expect(p.cmd.Start()).To(Succeed())
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	DeferCleanup(p.kill)
	return p
}

// kill ends the verifier at once, as a crash or an attacker would.
func (p *verifierProcess) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// metric reads one sample from the verifier's /metrics, 0 when absent.
func (p *verifierProcess) metric(g Gomega, sample string) float64 {
	resp, err := http.Get("http://" + p.healthAddr + "/metrics")
	g.Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	g.Expect(err).NotTo(HaveOccurred())
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(sample) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	g.Expect(err).NotTo(HaveOccurred())
	return v
}

type prefixWriter struct {
	prefix string
	w      io.Writer
}

func (p prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			_, _ = io.WriteString(p.w, p.prefix+line)
		}
	}
	return len(b), nil
}

// Where the device pod's flows go, outside the cluster.
var (
	ehr    = clinic.AddressEndpoint("ehr", "10.40.0.5")
	pacs   = clinic.AddressEndpoint("pacs", "10.50.0.5")
	biomed = clinic.AddressEndpoint("biomed", "10.60.0.5")
)

var (
	hl7         = clinic.Port{Number: 2575, Protocol: corev1.ProtocolTCP}
	dicom       = clinic.Port{Number: 104, Protocol: corev1.ProtocolTCP}
	remediation = clinic.Port{Number: 8443, Protocol: corev1.ProtocolTCP}
	attestation = clinic.Port{Number: int(segment.DefaultAttestationPort),
		Protocol: corev1.ProtocolTCP}
	dns = clinic.Port{Number: 53, Protocol: corev1.ProtocolUDP}
)

// reach is one connection the device pod may or may not make.
type reach struct {
	to   clinic.Endpoint
	port clinic.Port
	// open lists the quarantine states in which it is allowed.
	open []iomtv1.QuarantineState
}

var (
	none, restricted, isolated = iomtv1.QuarantineNone, iomtv1.QuarantineRestricted,
		iomtv1.QuarantineIsolated
	// reaches are what the segment promises in each state: essential
	// flows survive a restriction, remediation, attestation and DNS (so
	// the verifier finds the endpoint) survive everything, and nothing
	// opens what the segment does not say.
	reaches = func() []reach {
		return []reach{
			{ehr, hl7, []iomtv1.QuarantineState{none, restricted}},
			{pacs, dicom, []iomtv1.QuarantineState{none}},
			{biomed, remediation, []iomtv1.QuarantineState{none, restricted, isolated}},
			{operatorPod, attestation, []iomtv1.QuarantineState{none, restricted, isolated}},
			{dnsPod, dns, []iomtv1.QuarantineState{none, restricted, isolated}},
			{pacs, hl7, nil},
			{ehr, dicom, nil},
		}
	}
)

// expectFlows waits until the NetworkPolicies in force, judged by
// cyclonus, allow the device pod exactly what state q keeps.
func expectFlows(d *device, q iomtv1.QuarantineState) {
	GinkgoHelper()
	ports := []clinic.Port{hl7, dicom, remediation, attestation, dns}
	var probes []clinic.Probe
	for _, r := range reaches() {
		probes = append(probes, clinic.Probe{From: d.pod, To: r.to})
	}
	Eventually(func(g Gomega) {
		namespaces := []string{d.key.Namespace, "iomt-system", "kube-system"}
		table, err := clinic.EvaluateFlows(ctx, k8s, namespaces, probes, ports)
		g.Expect(err).NotTo(HaveOccurred())
		var wrong []string
		for _, r := range reaches() {
			allowed, found := table.Allowed(d.pod.Name, r.to.Name, r.port)
			g.Expect(found).To(BeTrue())
			want := false
			for _, s := range r.open {
				want = want || s == q
			}
			if allowed != want {
				wrong = append(wrong, fmt.Sprintf("%s -> %s on %s: allowed %v, want %v",
					d.pod.Name, r.to.Name, r.port, allowed, want))
			}
		}
		g.Expect(wrong).To(BeEmpty(), "in state %s", q)
	}).Should(Succeed())
}

// policySelects reports whether np selects the device's pods.
func policySelects(np *networkingv1.NetworkPolicy, device string) bool {
	for _, e := range np.Spec.PodSelector.MatchExpressions {
		if e.Key == iomtv1.DeviceLabel && e.Operator == metav1.LabelSelectorOpIn {
			for _, v := range e.Values {
				if v == device {
					return true
				}
			}
		}
	}
	return false
}

// policyOf reads the device's segment policy for state q; nil when it does
// not exist or does not select the device.
func policyOf(d *device, q iomtv1.QuarantineState) func(Gomega) *networkingv1.NetworkPolicy {
	return func(g Gomega) *networkingv1.NetworkPolicy {
		var np networkingv1.NetworkPolicy
		key := client.ObjectKey{Namespace: d.key.Namespace, Name: segment.PolicyName("pumps", q)}
		err := k8s.Get(ctx, key, &np)
		if err != nil || !policySelects(&np, d.key.Name) {
			return nil
		}
		return &np
	}
}
