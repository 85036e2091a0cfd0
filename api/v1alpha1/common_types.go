package v1alpha1

// DeviceLabel is the label that ties a pod to the MedicalDevice it serves.
// Its value is the MedicalDevice's name in the pod's namespace.
const DeviceLabel = "iomt.medinaii.io/device"

// ProtocolName names a clinical or infrastructure protocol whose ports the
// operator knows.
// +kubebuilder:validation:Enum=HL7MLLP;DICOM;DICOMTLS;FHIR;DICOMweb;MQTT;SDC;NTP;Syslog
// +kubebuilder:validation:MaxLength=16
type ProtocolName string

// The known protocols and the ports they use.
const (
	// ProtocolHL7MLLP is HL7 v2 over MLLP, TCP 2575.
	ProtocolHL7MLLP ProtocolName = "HL7MLLP"
	// ProtocolDICOM is DICOM upper layer, TCP 104 and 11112.
	ProtocolDICOM ProtocolName = "DICOM"
	// ProtocolDICOMTLS is DICOM over TLS, TCP 2762.
	ProtocolDICOMTLS ProtocolName = "DICOMTLS"
	// ProtocolFHIR is FHIR over HTTPS, TCP 443.
	ProtocolFHIR ProtocolName = "FHIR"
	// ProtocolDICOMweb is DICOMweb over HTTPS, TCP 443.
	ProtocolDICOMweb ProtocolName = "DICOMweb"
	// ProtocolMQTT is MQTT over TLS, TCP 8883.
	ProtocolMQTT ProtocolName = "MQTT"
	// ProtocolSDC is IEEE 11073 SDC: discovery on UDP 3702, messages on TCP 443.
	ProtocolSDC ProtocolName = "SDC"
	// ProtocolNTP is NTP, UDP 123.
	ProtocolNTP ProtocolName = "NTP"
	// ProtocolSyslog is syslog over TLS, TCP 6514.
	ProtocolSyslog ProtocolName = "Syslog"
)

// Transport is the transport protocol of an explicit port.
// +kubebuilder:validation:Enum=TCP;UDP;SCTP
type Transport string

// The transports a port can use.
const (
	TransportTCP  Transport = "TCP"
	TransportUDP  Transport = "UDP"
	TransportSCTP Transport = "SCTP"
)

// ProtocolPort is a named protocol, an explicit port, or a named protocol
// narrowed to one of its ports.
//
// +kubebuilder:validation:XValidation:rule="has(self.name) || has(self.port)",message="give a protocol name (for example HL7MLLP), an explicit port, or both"
// +kubebuilder:validation:XValidation:rule="!has(self.name) || !has(self.transport)",message="transport is taken from the named protocol: leave transport out, or drop the name and give port and transport",fieldPath=".transport"
// +kubebuilder:validation:XValidation:rule="!has(self.name) || !has(self.port) || self.port in {'HL7MLLP': [2575], 'DICOM': [104, 11112], 'DICOMTLS': [2762], 'FHIR': [443], 'DICOMweb': [443], 'MQTT': [8883], 'SDC': [3702, 443], 'NTP': [123], 'Syslog': [6514]}[self.name]",message="port is not a port of the named protocol (HL7MLLP 2575, DICOM 104 or 11112, DICOMTLS 2762, FHIR 443, DICOMweb 443, MQTT 8883, SDC 3702 or 443, NTP 123, Syslog 6514); drop the name to open another port",fieldPath=".port"
type ProtocolPort struct {
	// name is a known protocol; the operator opens the ports it uses:
	// HL7MLLP TCP 2575, DICOM TCP 104 and 11112, DICOMTLS TCP 2762, FHIR and
	// DICOMweb TCP 443, MQTT TCP 8883, SDC UDP 3702 and TCP 443, NTP UDP 123,
	// Syslog TCP 6514. When left out, port is required.
	// +optional
	Name ProtocolName `json:"name,omitempty"`

	// port is an explicit port, 1 to 65535. Together with name it narrows
	// the protocol to that one of its ports; alone it opens just this port.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`

	// transport is TCP, UDP or SCTP for an explicit port without a name.
	// When left out, TCP is used and shown in status.
	// +optional
	Transport Transport `json:"transport,omitempty"`
}

// LANAddress is where a device sits on the clinic network: one IP address
// (10.20.1.15, fd00::15) or a small network in CIDR form with no host bits
// set (10.20.1.0/28): at least /24 for IPv4 and /64 for IPv6, since every
// address in it is opened to the device's peers.
//
// +kubebuilder:validation:MaxLength=43
// +kubebuilder:validation:XValidation:rule="isIP(self) || (isCIDR(self) && cidr(self) == cidr(self).masked())",message="must be an IP address such as 10.20.1.15, or a CIDR with no host bits set such as 10.20.1.0/28"
// +kubebuilder:validation:XValidation:rule="!isCIDR(self) || cidr(self).prefixLength() >= (cidr(self).ip().family() == 4 ? 24 : 64)",message="a device address range must be at least /24 (IPv4) or /64 (IPv6): every address in it is opened to the device's peers"
type LANAddress string
