package clinic

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// What follows knows the sample clinic in config/samples by name: its
// namespaces, its devices and the applications its segments name.

// SampleFieldOwner is the field manager the demo and tests apply the
// sample clinic with.
const SampleFieldOwner = "iomt-demo"

// SamplePodNetwork is where the sample clinic's stand-in pods get their
// addresses; it overlaps none of the clinic's LAN ranges.
const SamplePodNetwork = "10.244.0.0/16"

// appsNamespace holds the hospital applications the devices talk to.
const appsNamespace = "clinical-apps"

// samplePods are the pods of the sample clinic that are not devices: the
// applications its segments name, two that nothing should reach devices
// from, and cluster DNS.
var samplePods = []Pod{
	appPod(appsNamespace, "hl7-interface-engine"),
	appPod(appsNamespace, "pacs"),
	appPod(appsNamespace, "ris"),
	appPod(appsNamespace, "lis"),
	appPod(appsNamespace, "central-station"),
	appPod(appsNamespace, "infusion-safety-server"),
	appPod(appsNamespace, "telemetry-broker"),
	appPod(appsNamespace, "visitor-portal"),
	appPod("icu", "bedside-dashboard"),
	{
		Namespace: metav1.NamespaceSystem, Name: "coredns",
		Labels: map[string]string{"k8s-app": "kube-dns"},
	},
}

func appPod(namespace, name string) Pod {
	return Pod{Namespace: namespace, Name: name,
		Labels: map[string]string{"app.kubernetes.io/name": name}}
}

// PodCounts says how many stand-in pods were made.
type PodCounts struct {
	// Total counts every pod, Devices those of device workloads.
	Total, Devices int
}

// CreateSamplePods stands in a pod for every device workload in
// namespaces, for the applications the sample clinic's segments name, and
// for cluster DNS, each with an address from SamplePodNetwork.
func CreateSamplePods(ctx context.Context, c client.Client, namespaces []string) (PodCounts, error) {
	pool, err := NewAddressPool(SamplePodNetwork)
	if err != nil {
		return PodCounts{}, err
	}
	pods, err := DevicePods(ctx, c, namespaces, pool)
	if err != nil {
		return PodCounts{}, err
	}
	counts := PodCounts{Devices: len(pods)}
	for _, p := range samplePods {
		p.IP, err = pool.Next()
		if err != nil {
			return PodCounts{}, err
		}
		pods = append(pods, p)
	}

	for _, p := range pods {
		if _, err := CreatePod(ctx, c, p); err != nil {
			return PodCounts{}, err
		}
	}
	counts.Total = len(pods)
	return counts, nil
}

// Addresses outside the cluster that the sample clinic's probes use.
const (
	datacentre     = "10.30.4.20"
	guestNetwork   = "10.30.99.20"
	readingRoom    = "10.40.3.15"
	vdiPool        = "10.40.200.15"
	pumpAlaris02   = "10.20.1.22"
	monitorMX80001 = "10.20.1.101"
)

// SampleProbes are the connections a flow table of the sample clinic
// tries: what each segment is for, what it must keep out, and the edges:
// LAN addresses, excepted ranges, Observe mode, a device no segment holds,
// DNS allowed and denied. The pods must exist (CreateSamplePods).
func SampleProbes(ctx context.Context, c client.Reader) ([]Probe, error) {
	var readErr error
	pod := func(namespace, name string) Endpoint {
		ep, err := PodEndpoint(ctx, c, namespace, name)
		if err != nil && readErr == nil {
			readErr = fmt.Errorf("failed to build the sample probes: %w", err)
		}
		return ep
	}
	dev := func(namespace, device string) Endpoint { return pod(namespace, DevicePodName(device)) }
	app := func(name string) Endpoint { return pod(appsNamespace, name) }
	lan := func(name, ip string) Endpoint { return AddressEndpoint(name+" "+ip, ip) }
	flow := func(from, to Endpoint) Probe { return Probe{From: from, To: to} }

	gateway := dev("integration", "gw-neuron-01")
	dns := pod(metav1.NamespaceSystem, "coredns")
	ct := dev("radiology", "rad-ct-somatom-01")
	probes := []Probe{
		flow(dev("icu", "icu-pump-alaris-01"), gateway),
		flow(lan("LAN icu-pump-alaris-02", pumpAlaris02), gateway),
		flow(dev("icu", "icu-pump-spectrum-01"), lan("datacentre", datacentre)),
		flow(dev("icu", "icu-pump-spectrum-01"), lan("guest network", guestNetwork)),
		flow(app("infusion-safety-server"), dev("icu", "icu-pump-alaris-01")),
		flow(dev("icu", "icu-monitor-mx800-01"), dev("integration", "gw-intellibridge-01")),
		flow(dev("icu", "icu-monitor-mx800-01"), dev("icu", "icu-monitor-mx800-02")),
		flow(app("central-station"), dev("icu", "icu-monitor-mx800-02")),
		flow(lan("LAN icu-monitor-mx800-01", monitorMX80001), dev("icu", "icu-monitor-mx800-02")),
		flow(dev("icu", "icu-vent-pb980-01"), dns),
		flow(pod("icu", "bedside-dashboard"), dev("icu", "icu-vent-pb980-01")),
		flow(dev("icu", "icu-bed-intouch-01"), gateway),
		flow(dev("icu", "icu-bed-intouch-01"), dns),
		flow(dev("ward-3", "w3-pump-alaris-01"), gateway),
		flow(app("central-station"), dev("ward-3", "w3-monitor-csm-01")),
		flow(dev("ward-3", "w3-wearable-w1-01"), app("telemetry-broker")),
		flow(ct, app("pacs")),
		flow(dev("radiology", "rad-mr-ingenia-01"), app("ris")),
		flow(ct, dns),
		flow(lan("reading room", readingRoom), ct),
		flow(lan("VDI pool", vdiPool), ct),
		flow(dev("lab", "lab-cobas-8000-01"), app("lis")),
		flow(gateway, app("hl7-interface-engine")),
		flow(dev("integration", "gw-intellibridge-01"), lan("datacentre", datacentre)),
		flow(app("hl7-interface-engine"), dev("icu", "icu-pump-alaris-01")),
		flow(app("visitor-portal"), gateway),
	}
	if readErr != nil {
		return nil, readErr
	}
	return probes, nil
}
