package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medinaii/iomt-operator/controllers"
	iomtwebhook "github.com/medinaii/iomt-operator/internal/webhook"
)

func TestParseDeviceNamespaces(t *testing.T) {
	tests := []struct {
		name  string
		value string
		// want is the list; nil means every namespace.
		want []string
		// wantErr is part of the error; "" when none is expected.
		wantErr string
	}{
		{name: "star is every namespace", value: "*", want: nil},
		{name: "star with spaces", value: " * ", want: nil},
		{name: "empty is none", value: "", want: []string{}},
		{name: "blank is none", value: "  ", want: []string{}},
		{name: "one", value: "icu", want: []string{"icu"}},
		{name: "list with spaces and repeats", value: "icu, radiology ,icu",
			want: []string{"icu", "radiology"}},
		{name: "upper case", value: "icu,Radiology",
			wantErr: `--device-namespaces: "Radiology" is not a namespace name`},
		{name: "dots", value: "ward.3", wantErr: `"ward.3" is not a namespace name`},
		{name: "empty entry", value: "icu,,radiology", wantErr: `"" is not a namespace name`},
		{name: "star in a list", value: "*,icu", wantErr: `"*" is not a namespace name`},
		{name: "too long", value: strings.Repeat("a", 64), wantErr: "no more than 63 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDeviceNamespaces(tt.value)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseDeviceNamespaces(%q) error = %v, want one containing %q", tt.value, err,
						tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseDeviceNamespaces(%q) error = %v", tt.value, err)
			}
			if (got == nil) != (tt.want == nil) || !slices.Equal(got, tt.want) {
				t.Fatalf("parseDeviceNamespaces(%q) = %#v, want %#v", tt.value, got, tt.want)
			}
		})
	}
}

func TestCheckLifetimes(t *testing.T) {
	const (
		day  = 24 * time.Hour
		year = 365 * day
	)
	tests := []struct {
		name     string
		identity time.Duration
		ca       time.Duration
		delay    time.Duration
		// wantErr is part of the error; "" when none is expected.
		wantErr string
	}{
		{name: "the defaults pass", identity: day, ca: year, delay: 2 * time.Minute},
		{name: "the shortest identity lifetime passes", identity: time.Hour, ca: year, delay: 2 * time.Minute},
		{name: "the longest identity lifetime passes with a CA three times as long",
			identity: 8760 * time.Hour, ca: 3 * 8760 * time.Hour, delay: 0},
		{name: "a CA exactly three times the lifetime plus the delay passes",
			identity: day, ca: 3 * (day + 2*time.Minute), delay: 2 * time.Minute},
		{name: "a zero delay passes", identity: day, ca: 3 * day, delay: 0},
		{name: "an identity lifetime of a second is refused", identity: time.Second, ca: year,
			wantErr: "--identity-lifetime=1s is out of range: it must be from 1h0m0s to 8760h0m0s"},
		{name: "a zero identity lifetime is refused", identity: 0, ca: year, wantErr: "--identity-lifetime=0s"},
		{name: "an identity lifetime over a year is refused", identity: 8761 * time.Hour, ca: 10 * year,
			wantErr: "--identity-lifetime=8761h0m0s is out of range"},
		{name: "a negative delay is refused", identity: day, ca: year, delay: -time.Second,
			wantErr: "--ca-propagation-delay=-1s must not be negative"},
		{name: "a CA of thirty seconds is refused", identity: day, ca: 30 * time.Second, delay: 2 * time.Minute,
			wantErr: "--ca-lifetime=30s is too short: it must be at least 3 × (--identity-lifetime + " +
				"--ca-propagation-delay) = 3 × (24h0m0s + 2m0s) = 72h6m0s"},
		{name: "a CA a nanosecond short of the minimum is refused",
			identity: day, ca: 3*(day+2*time.Minute) - 1, delay: 2 * time.Minute,
			wantErr: "the certificates it signs last must expire before it does"},
		{name: "a one-year identity lifetime needs more than the default CA lifetime",
			identity: 8760 * time.Hour, ca: year, delay: 2 * time.Minute, wantErr: "--ca-lifetime=8760h0m0s"},
		{name: "a delay too long for the CA is refused", identity: day, ca: year, delay: 200 * day,
			wantErr: "--ca-lifetime=8760h0m0s is too short"},
		{name: "a delay too long to add up is refused", identity: day, ca: year, delay: time.Duration(1<<63 - 1),
			wantErr: "--ca-lifetime=8760h0m0s is too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkLifetimes(tt.identity, tt.ca, tt.delay)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("checkLifetimes(%s, %s, %s) error = %v", tt.identity, tt.ca, tt.delay, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("checkLifetimes(%s, %s, %s) error = %v, want one containing %q", tt.identity, tt.ca,
					tt.delay, err, tt.wantErr)
			}
		})
	}
}

func TestWebhookOptionsTakeTheOperatorsSettings(t *testing.T) {
	c := config{
		namespace: "iomt-system",
		webhook:   iomtwebhook.Options{ServiceName: "iomt-operator-webhook"},
		identity: controllers.IdentityOptions{TrustDomain: "clinic.example",
			DeviceNamespaces: []string{"icu", "radiology"}},
	}
	got := webhookOptions(c)
	if got.TrustDomain != "clinic.example" {
		t.Errorf("TrustDomain = %q, want the --trust-domain value %q", got.TrustDomain, "clinic.example")
	}
	if got.OperatorNamespace != "iomt-system" {
		t.Errorf("OperatorNamespace = %q, want %q", got.OperatorNamespace, "iomt-system")
	}
	if !slices.Equal(got.DeviceNamespaces, []string{"icu", "radiology"}) {
		t.Errorf("DeviceNamespaces = %q, want [icu radiology]", got.DeviceNamespaces)
	}
	if got.ServiceName != "iomt-operator-webhook" {
		t.Errorf("ServiceName = %q, want the webhook flag kept", got.ServiceName)
	}
}
