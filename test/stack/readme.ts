// What the stack test takes from the README (so the README's advice is what runs) and the one file it generates.

/** The README's compose.override.yml for smoke's bucket check: the ```yaml block that starts "# compose.override.yml". */
export function composeOverrideFromReadme(readme: string): string {
  const block = /```yaml\n(# compose\.override\.yml[^\n]*\n[\s\S]*?)```/.exec(readme);
  if (!block) throw new Error("README.md has no ```yaml block starting with '# compose.override.yml' (the MinIO publishing advice)");
  return block[1];
}

/** compose.prod.yml publishes 80/443 on all interfaces: the test puts them on free loopback ports instead. */
export function loopbackPortsOverride(http: number, https: number): string {
  return [
    "# Written by test/stack/run.ts: compose.prod.yml's public 80/443 on loopback ports for the test.",
    "services:",
    "  proxy:",
    "    ports: !override",
    `      - "127.0.0.1:${http}:80"`,
    `      - "127.0.0.1:${https}:443"`,
    "",
  ].join("\n");
}
