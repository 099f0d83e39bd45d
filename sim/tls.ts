/**
 * A throwaway certificate authority and serving certificate for the simulated API server, made
 * with `openssl` (real clusters are HTTPS, so the simulator is too by default).
 */

/** PEM material for an HTTPS server on loopback. */
export interface SimTls {
  caPem: string;
  certPem: string;
  keyPem: string;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "piped" })
      .output();
  } catch (error) {
    throw new Error(
      `the simulated cluster needs openssl for its HTTPS certificate (${
        (error as Error).message
      }); ` +
        "install openssl or use --no-tls",
    );
  }
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

/** Generates a CA and a certificate for 127.0.0.1 and localhost, valid for two days. */
export async function generateSimTls(): Promise<SimTls> {
  const dir = await Deno.makeTempDir({ prefix: "k8stun-sim-tls-" });
  try {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await Deno.writeTextFile(`${dir}/san.cnf`, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
    await openssl(dir, [
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "2",
      "-subj",
      "/CN=k8stun-sim-ca",
    ]);
    await openssl(dir, [
      "req",
      ...ec,
      "-keyout",
      "server.key",
      "-out",
      "server.csr",
      "-subj",
      "/CN=k8stun-sim",
    ]);
    await openssl(dir, [
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "server.crt",
      "-days",
      "2",
      "-extfile",
      "san.cnf",
    ]);
    return {
      caPem: await Deno.readTextFile(`${dir}/ca.crt`),
      certPem: await Deno.readTextFile(`${dir}/server.crt`),
      keyPem: await Deno.readTextFile(`${dir}/server.key`),
    };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
