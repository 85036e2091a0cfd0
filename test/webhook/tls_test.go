package webhook

import (
	"crypto/tls"
	"net"
	"strconv"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("Webhook server TLS", func() {
	DescribeTable("should accept TLS 1.2 and newer only",
		func(version uint16, accepted bool) {
			addr := net.JoinHostPort(opts.Host, strconv.Itoa(opts.Port))
			conn, err := tls.Dial("tcp", addr, &tls.Config{
				RootCAs: servingCAs, MinVersion: version, MaxVersion: version,
			})
			if !accepted {
				Expect(err).To(HaveOccurred(), "the server completed a handshake at %s",
					tls.VersionName(version))
				return
			}
			Expect(err).NotTo(HaveOccurred())
			defer conn.Close()
			Expect(conn.ConnectionState().Version).To(Equal(version))
		},
		Entry("TLS 1.0 is refused", uint16(tls.VersionTLS10), false),
		Entry("TLS 1.1 is refused", uint16(tls.VersionTLS11), false),
		Entry("TLS 1.2 is accepted", uint16(tls.VersionTLS12), true),
		Entry("TLS 1.3 is accepted", uint16(tls.VersionTLS13), true),
	)
})
