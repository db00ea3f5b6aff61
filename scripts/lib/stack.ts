// Facts about the local stack that several tasks need, derived from its .env.

/** Where users reach the stack: https://DOMAIN on a server, http://localhost:PROXY_PORT locally. */
export function stackUrl(env: Record<string, string | undefined>): string {
  const domain = env.DOMAIN?.trim() || "localhost";
  if (domain === "localhost" || domain === "127.0.0.1") return `http://localhost:${env.PROXY_PORT?.trim() || "8080"}`;
  return `https://${domain}`;
}
