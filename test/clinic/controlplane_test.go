package clinic

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiserverv1 "k8s.io/apiserver/pkg/apis/apiserver/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

var _ = Describe("Local control plane", func() {
	Context("when a Secret is written", func() {
		It("should store it in etcd encrypted with AES-GCM", func(ctx SpecContext) {
			const plaintext = "infusion-gateway-password-7f3a9c"
			secret := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: metav1.NamespaceDefault, Name: "at-rest"},
				StringData: map[string]string{"password": plaintext},
			}
			Expect(k8sClient.Create(ctx, secret)).To(Succeed())

			raw, err := cp.ReadEtcd(ctx, SecretKey(secret.Namespace, secret.Name))
			Expect(err).NotTo(HaveOccurred())
			Expect(string(raw)).To(HavePrefix("k8s:enc:aesgcm:v1:"))
			Expect(IsEncrypted(raw)).To(BeTrue())
			Expect(bytes.Contains(raw, []byte(plaintext))).To(BeFalse(),
				"etcd holds the Secret's value in plain text")
			encoded := base64.StdEncoding.EncodeToString([]byte(plaintext))
			Expect(bytes.Contains(raw, []byte(encoded))).To(BeFalse(),
				"etcd holds the Secret's value base64-encoded")

			var back corev1.Secret
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(secret), &back)).To(Succeed())
			Expect(string(back.Data["password"])).To(Equal(plaintext))
		})
	})

	Context("when the encryption configuration is written", func() {
		It("should hold a fresh 256-bit AES-GCM key, then identity, readable by its owner only", func() {
			dir := GinkgoT().TempDir()
			first, err := WriteEncryptionConfig(dir)
			Expect(err).NotTo(HaveOccurred())
			info, err := os.Stat(first)
			Expect(err).NotTo(HaveOccurred())
			Expect(info.Mode().Perm()).To(Equal(os.FileMode(0o600)))

			key := func(path string) []byte {
				data, err := os.ReadFile(path)
				Expect(err).NotTo(HaveOccurred())
				var cfg apiserverv1.EncryptionConfiguration
				Expect(json.Unmarshal(data, &cfg)).To(Succeed())
				Expect(cfg.APIVersion).To(Equal("apiserver.config.k8s.io/v1"))
				Expect(cfg.Kind).To(Equal("EncryptionConfiguration"))
				Expect(cfg.Resources).To(HaveLen(1))
				Expect(cfg.Resources[0].Resources).To(Equal([]string{"secrets"}))
				providers := cfg.Resources[0].Providers
				Expect(providers).To(HaveLen(2))
				Expect(providers[0].AESGCM).NotTo(BeNil())
				Expect(providers[1].Identity).NotTo(BeNil())
				Expect(providers[0].AESGCM.Keys).To(HaveLen(1))
				k, err := base64.StdEncoding.DecodeString(providers[0].AESGCM.Keys[0].Secret)
				Expect(err).NotTo(HaveOccurred())
				Expect(k).To(HaveLen(32))
				return k
			}
			second, err := WriteEncryptionConfig(GinkgoT().TempDir())
			Expect(err).NotTo(HaveOccurred())
			Expect(key(first)).NotTo(Equal(key(second)), "two runs share a key")
		})
	})
})
