package main

import (
	"slices"
	"strings"
	"testing"
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
