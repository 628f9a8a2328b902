import com.microsoft.azure.sdk.iot.device.ClientOptions;
import com.microsoft.azure.sdk.iot.device.DeviceClient;
import com.microsoft.azure.sdk.iot.device.IotHubClientProtocol;
import com.microsoft.azure.sdk.iot.device.Message;
import com.microsoft.azure.sdk.iot.device.exceptions.IotHubClientException;
import com.microsoft.azure.sdk.iot.device.transport.NoRetry;
import com.microsoft.azure.sdk.iot.provisioning.device.ProvisioningDeviceClient;
import com.microsoft.azure.sdk.iot.provisioning.device.ProvisioningDeviceClientRegistrationResult;
import com.microsoft.azure.sdk.iot.provisioning.device.ProvisioningDeviceClientTransportProtocol;
import com.microsoft.azure.sdk.iot.provisioning.security.SecurityProviderSymmetricKey;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

/**
 * The Azure IoT Java SDK (device client 2.x, provisioning client 2.x) as a user runs it, against the lab hub
 * and DPS: `hub` opens a DeviceClient and sends one message; `dps` registers with a symmetric key. Prints one
 * JSON line: {"ok":true,...} or {"error":"<class>","status":"<IotHubStatusCode>","message":"..."}.
 * Trusts only the lab root (TRUST_PEM); names resolve through -Djdk.net.hosts.file.
 */
public class Probe {
  public static void main(String[] args) {
    String out;
    try {
      trustLabRoot(System.getenv("TRUST_PEM"));
      out = "hub".equals(args[0]) ? hub() : dps();
    } catch (IotHubClientException e) {
      out = error(e, String.valueOf(e.getStatusCode()));
    } catch (Throwable e) {
      out = error(e, "");
    }
    System.out.println(out);
    System.out.flush();
    System.exit(0);
  }

  static String hub() throws Exception {
    ClientOptions options = ClientOptions.builder()
        .amqpAuthenticationSessionTimeout(Integer.parseInt(System.getenv("AUTH_TIMEOUT_S")))
        .build();
    DeviceClient client = new DeviceClient(System.getenv("CONNECTION_STRING"),
        IotHubClientProtocol.valueOf(System.getenv("PROTOCOL")), options);
    client.setRetryPolicy(new NoRetry());
    try {
      client.open(false);
      client.sendEvent(new Message(System.getenv("BODY")));
      return "{\"ok\":true}";
    } finally {
      client.close();
    }
  }

  static String dps() throws Exception {
    SecurityProviderSymmetricKey security = new SecurityProviderSymmetricKey(
        System.getenv("KEY").getBytes(StandardCharsets.UTF_8), System.getenv("REG_ID"));
    ProvisioningDeviceClient client = ProvisioningDeviceClient.create(System.getenv("DPS_HOST"),
        System.getenv("ID_SCOPE"), ProvisioningDeviceClientTransportProtocol.valueOf(System.getenv("PROTOCOL")),
        security);
    try {
      ProvisioningDeviceClientRegistrationResult r = client.registerDeviceSync();
      return "{\"ok\":true,\"status\":\"" + r.getProvisioningDeviceClientStatus() + "\",\"assignedHub\":\""
          + r.getIothubUri() + "\",\"deviceId\":\"" + r.getDeviceId() + "\"}";
    } finally {
      client.close();
    }
  }

  /** The lab root as the JVM's only trust anchor (default SSLContext and javax.net.ssl.trustStore). */
  static void trustLabRoot(String pemPath) throws Exception {
    KeyStore store = KeyStore.getInstance("PKCS12");
    store.load(null, null);
    try (FileInputStream in = new FileInputStream(pemPath)) {
      X509Certificate root = (X509Certificate) CertificateFactory.getInstance("X.509").generateCertificate(in);
      store.setCertificateEntry("fieldlab-root", root);
    }
    Path file = Files.createTempFile("fieldlab-trust", ".p12");
    file.toFile().deleteOnExit();
    try (FileOutputStream out = new FileOutputStream(file.toFile())) {
      store.store(out, "fieldlab".toCharArray());
    }
    System.setProperty("javax.net.ssl.trustStore", file.toString());
    System.setProperty("javax.net.ssl.trustStorePassword", "fieldlab");
    System.setProperty("javax.net.ssl.trustStoreType", "PKCS12");
    TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(store);
    SSLContext context = SSLContext.getInstance("TLS");
    context.init(null, tmf.getTrustManagers(), null);
    SSLContext.setDefault(context);
  }

  static String error(Throwable e, String status) {
    Throwable root = e;
    StringBuilder chain = new StringBuilder();
    for (Throwable t = e; t != null; t = t.getCause()) {
      if (chain.length() > 0) chain.append(" <- ");
      chain.append(t.getClass().getSimpleName()).append(": ").append(t.getMessage());
      root = t;
    }
    return "{\"error\":\"" + e.getClass().getSimpleName() + "\",\"status\":\"" + status + "\",\"message\":\""
        + chain.toString().replace("\\", "\\\\").replace("\"", "'").replace("\n", " ") + "\"}";
  }
}
