package clinic

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	iomtv1 "github.com/medinaii/iomt-operator/api/v1alpha1"
)

// Pod describes a stand-in pod. A local control plane has no scheduler and
// no kubelet, so the pod never runs; CreatePod writes its address into
// status itself, which is all that NetworkPolicies look at.
type Pod struct {
	Namespace string
	Name      string
	Labels    map[string]string
	// ServiceAccountName is created when it does not exist yet.
	ServiceAccountName string
	// IP is written to status.podIP and status.podIPs.
	IP string
}

// standInImage is never pulled: nothing runs the pods.
const standInImage = "registry.k8s.io/pause:3.10"

// CreatePod creates the pod, and its service account when it names one
// that does not exist, then records its IP in status the way a kubelet
// would.
func CreatePod(ctx context.Context, c client.Client, p Pod) (*corev1.Pod, error) {
	if p.ServiceAccountName != "" {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{
			Namespace: p.Namespace, Name: p.ServiceAccountName,
		}}
		if err := c.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("failed to create ServiceAccount %s/%s: %w", p.Namespace, sa.Name, err)
		}
	}

	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.Namespace, Name: p.Name, Labels: p.Labels},
		Spec: corev1.PodSpec{
			ServiceAccountName:           p.ServiceAccountName,
			AutomountServiceAccountToken: ptr.To(false),
			Containers:                   []corev1.Container{{Name: "main", Image: standInImage}},
		},
	}
	if err := c.Create(ctx, pod); err != nil {
		return nil, fmt.Errorf("failed to create Pod %s/%s: %w", p.Namespace, p.Name, err)
	}

	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIP = p.IP
	pod.Status.PodIPs = []corev1.PodIP{{IP: p.IP}}
	if err := c.Status().Update(ctx, pod); err != nil {
		return nil, fmt.Errorf("failed to record the IP of Pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	return pod, nil
}

// DevicePods returns a stand-in pod for every MedicalDevice in namespaces
// that names a workload: it carries the device label and runs as the
// workload's service account, as a device's gateway or adapter would.
// Addresses come from pool.
func DevicePods(ctx context.Context, c client.Reader, namespaces []string,
	pool *AddressPool) ([]Pod, error) {
	var pods []Pod
	for _, ns := range namespaces {
		var devs iomtv1.MedicalDeviceList
		if err := c.List(ctx, &devs, client.InNamespace(ns)); err != nil {
			return nil, fmt.Errorf("failed to list MedicalDevices in %s: %w", ns, err)
		}
		for _, d := range devs.Items {
			if d.Spec.Workload == nil {
				continue
			}
			ip, err := pool.Next()
			if err != nil {
				return nil, err
			}
			pods = append(pods, Pod{
				Namespace:          ns,
				Name:               DevicePodName(d.Name),
				Labels:             map[string]string{iomtv1.DeviceLabel: d.Name},
				ServiceAccountName: d.Spec.Workload.ServiceAccountName,
				IP:                 ip,
			})
		}
	}
	return pods, nil
}

// DevicePodName is the name of the stand-in pod of a device.
func DevicePodName(device string) string { return device + "-adapter" }

// AddressPool hands out consecutive addresses from a prefix.
type AddressPool struct {
	prefix netip.Prefix
	next   netip.Addr
}

// NewAddressPool returns a pool that starts at the prefix's tenth address,
// leaving the first ones to gateways and the like.
func NewAddressPool(prefix string) (*AddressPool, error) {
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		return nil, fmt.Errorf("failed to parse address pool %q: %w", prefix, err)
	}
	next := p.Masked().Addr()
	for range 10 {
		next = next.Next()
	}
	return &AddressPool{prefix: p.Masked(), next: next}, nil
}

// Next returns the next free address.
func (a *AddressPool) Next() (string, error) {
	if !a.next.IsValid() || !a.prefix.Contains(a.next) {
		return "", fmt.Errorf("address pool %s is exhausted", a.prefix)
	}
	ip := a.next
	a.next = a.next.Next()
	return ip.String(), nil
}
