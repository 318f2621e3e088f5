// A template tag for URL paths that percent-encodes every interpolated value: path`/v1/sessions/${id}`.

export function path(strings: TemplateStringsArray, ...values: readonly (string | number)[]): string {
  let out = strings[0];
  values.forEach((v, i) => {
    out += encodeURIComponent(String(v)) + strings[i + 1];
  });
  return out;
}
