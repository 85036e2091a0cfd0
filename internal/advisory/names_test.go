package advisory

import "testing"

func TestMatchVendor(t *testing.T) {
	tests := []struct {
		name         string
		manufacturer string
		vendor       string
		want         vendorMatch
	}{
		{name: "abbreviation in brackets", manufacturer: "BD",
			vendor: "Becton, Dickinson and Company (BD)", want: vendorSame},
		{name: "name without the company suffix", manufacturer: "Becton Dickinson",
			vendor: "Becton, Dickinson and Company (BD)", want: vendorSame},
		{name: "full legal name", manufacturer: "Becton, Dickinson and Company",
			vendor: "Becton, Dickinson and Company (BD)", want: vendorSame},
		{name: "trailing spaces", manufacturer: "Medtronic", vendor: "Medtronic ", want: vendorSame},
		{name: "case and punctuation", manufacturer: "b braun", vendor: "B. Braun", want: vendorSame},
		{name: "sector word on one side", manufacturer: "B. Braun Medical Inc.",
			vendor: "B. Braun Melsungen AG", want: vendorSame},
		{name: "parent brand is a leading part", manufacturer: "GE HealthCare",
			vendor: "General Electric (GE)", want: vendorSame},
		{name: "laboratories suffix", manufacturer: "Abbott", vendor: "Abbott Laboratories",
			want: vendorSame},
		{name: "several legal forms", manufacturer: "Sooil", vendor: "SOOIL Developments Co, Ltd.",
			want: vendorSame},
		{name: "dotted initials", manufacturer: "Example S.A.", vendor: "Example", want: vendorSame},
		{name: "hyphen inside the name", manufacturer: "iSENS", vendor: "i-SENS Inc",
			want: vendorSame},
		{name: "umlaut written out", manufacturer: "Draeger", vendor: "Dräger", want: vendorSame},
		{name: "umlaut dropped", manufacturer: "Drager", vendor: "Dräger", want: vendorSame},
		{name: "one of several vendors", manufacturer: "Wind River Systems",
			vendor: "ENEA, Green Hills Software, ITRON, IP Infusion, and Wind River", want: vendorSame},
		{name: "one of two vendors joined by and", manufacturer: "Silex Technology",
			vendor: "Silex Technology and GE Healthcare", want: vendorSame},
		{name: "party after a comma", manufacturer: "Baxter",
			vendor: "Hillrom and ELI, Baxter International Inc.", want: vendorSame},
		{name: "ampersand", manufacturer: "Johnson and Johnson", vendor: "Johnson & Johnson",
			want: vendorSame},
		{name: "misspelt vendor is only near", manufacturer: "Philips", vendor: "Phillips",
			want: vendorNear},
		{name: "different vendors", manufacturer: "Baxter", vendor: "Becton, Dickinson and Company (BD)",
			want: vendorNone},
		{name: "shared sector word is not enough", manufacturer: "Smiths Medical",
			vendor: "St. Jude Medical", want: vendorNone},
		{name: "shared healthcare word is not enough", manufacturer: "Change Healthcare",
			vendor: "GE Healthcare", want: vendorNone},
		{name: "a bare sector word names no vendor", manufacturer: "Medical",
			vendor: "Vyaire Medical", want: vendorNone},
		{name: "short names are never near", manufacturer: "GE", vendor: "BD", want: vendorNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := matchVendor(vendorAliases(tt.manufacturer), vendorAliases(tt.vendor))
			if got != tt.want {
				t.Errorf("matchVendor(%q, %q) = %d, want %d (aliases %q and %q)",
					tt.manufacturer, tt.vendor, got, tt.want,
					vendorAliases(tt.manufacturer), vendorAliases(tt.vendor))
			}
		})
	}
}

func TestMatchName(t *testing.T) {
	const none = matchKind(-1)
	tests := []struct {
		name         string
		manufacturer string
		model        string
		vendor       string
		product      string
		want         matchKind
		// doubt is set when the match must carry a reason for review.
		doubt bool
	}{
		{name: "same words", manufacturer: "BD", model: "Alaris PC Unit Model 8015",
			vendor: "Becton, Dickinson and Company (BD)", product: "Alaris PC Unit Model 8015",
			want: matchExact},
		{name: "model words inside a longer product name", manufacturer: "BD",
			model: "Alaris 8015", vendor: "Becton, Dickinson and Company (BD)",
			product: "Alaris PC Unit Model 8015", want: matchWithin},
		{name: "vendor abbreviation inside the model is ignored", manufacturer: "BD",
			model: "BD Alaris 8015", vendor: "Becton, Dickinson and Company (BD)",
			product: "BD Alaris Point-of-Care Unit (PCU) Model 8015", want: matchWithin},
		{name: "product adds a model number the model lacks", manufacturer: "BD",
			model: "Alaris PC Unit", vendor: "Becton, Dickinson and Company (BD)",
			product: "Alaris PC Unit Model 8015", want: matchNarrower},
		{name: "product names the family of a longer model", manufacturer: "BD",
			model: "Alaris PC Unit 8015", vendor: "Becton, Dickinson and Company (BD)",
			product: "Alaris PC Unit", want: matchFamily},
		{name: "other model number shares only the product line", manufacturer: "Medtronic",
			model: "MiniMed 670G", vendor: "Medtronic", product: "MiniMed 640G", want: matchLine},
		{name: "model number as first word is no product line", manufacturer: "Medtronic",
			model: "670G MiniMed", vendor: "Medtronic", product: "MiniMed 640G", want: none},
		{name: "different product lines do not match", manufacturer: "BD",
			model: "Pyxis MedStation", vendor: "Becton, Dickinson and Company (BD)",
			product: "Alaris PC Unit", want: none},
		{name: "model written together matches words written apart", manufacturer: "Philips",
			model: "IntelliBridge EC40", vendor: "Philips", product: "IntelliBridge EC 40 Hub",
			want: matchWithin},
		{name: "model written apart matches a word written together", manufacturer: "Philips",
			model: "IntelliBridge EC 40", vendor: "Philips", product: "IntelliBridge EC40 Hub",
			want: matchWithin},
		{name: "model inside a range in the product name", manufacturer: "Philips",
			model: "IntelliVue MX450", vendor: "Philips",
			product: "IntelliVue patient monitor MX400-MX850", want: matchWithin},
		{name: "model outside a range in the product name shares only the line",
			manufacturer: "Philips", model: "IntelliVue MX100", vendor: "Philips",
			product: "IntelliVue patient monitor MX400-MX850", want: matchLine},
		{name: "short model is not found inside a longer number", manufacturer: "Philips",
			model: "MP2", vendor: "Philips",
			product: "IntelliVue MP monitors MP20-MP90 (M8001A/2A/3A/4A/5A/7A/8A/10A) WLAN",
			want:    none},
		{name: "model in a slash list sharing one prefix", manufacturer: "Philips",
			model: "IntelliVue MX700", vendor: "Philips",
			product: "IntelliVue MP monitors MX800/700/600 ((865240/41/42) WLAN", want: matchWithin},
		{name: "plus sign spelt out", manufacturer: "GE Healthcare", model: "Discovery XR656+",
			vendor: "GE Healthcare", product: "Discovery XR656 Plus", want: matchExact},
		{name: "vendor name inside the product name", manufacturer: "Baxter",
			model: "Spectrum IQ", vendor: "Baxter", product: "Baxter Spectrum IQ", want: matchExact},
		{name: "brand of another vendor in the product name", manufacturer: "Welch Allyn",
			model: "Connex Spot Monitor", vendor: "Hillrom",
			product: "Welch Allyn Connex Spot Monitor (CSM)", want: matchWithin},
		{name: "other vendor does not match", manufacturer: "Baxter", model: "Connex Spot Monitor",
			vendor: "Philips", product: "Connex Spot Monitor", want: none},
		{name: "misspelt vendor matches with a doubt", manufacturer: "Philips",
			model: "IntelliSpace Cardiovascular", vendor: "Phillips",
			product: "IntelliSpace Cardiovascular", want: matchExact, doubt: true},
		{name: "excluded model matches with a doubt", manufacturer: "GE Healthcare",
			model: "LOGIQ 100 Pro", vendor: "GE Healthcare",
			product: "LOGIQ, not including LOGIQ 100 Pro", want: matchFamily, doubt: true},
		{name: "model outside the exclusion has no doubt", manufacturer: "GE Healthcare",
			model: "LOGIQ", vendor: "GE Healthcare",
			product: "LOGIQ, not including LOGIQ 100 Pro", want: matchExact},
		{name: "apostrophes join words", manufacturer: "Medtronic", model: "NVision 8840",
			vendor: "Medtronic", product: "8840 N'Vision Clinician Programmer", want: matchWithin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := &Product{Vendor: tt.vendor, Name: tt.product}
			p.prepare()
			dk := newDeviceKey(Device{Manufacturer: tt.manufacturer, Model: tt.model})
			m := matchName(dk, p)
			switch {
			case m == nil && tt.want == none:
				return
			case m == nil:
				t.Fatalf("no match, want kind %d", tt.want)
			case tt.want == none:
				t.Fatalf("match of kind %d, want none", m.kind)
			}
			if m.kind != tt.want {
				t.Errorf("kind = %d, want %d", m.kind, tt.want)
			}
			if got := len(m.doubts) > 0; got != tt.doubt {
				t.Errorf("doubts = %q, want doubt %v", m.doubts, tt.doubt)
			}
		})
	}
}
