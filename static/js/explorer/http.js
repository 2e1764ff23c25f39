/* What a refused request tells the visitor: the site limits how often one client may ask for
   maps, points and searches (429, with Retry-After). */
export function failure(response, gone) {
  if (response.status === 429) {
    const wait = parseInt(response.headers.get("Retry-After"), 10);
    return new Error("too many requests from this address; try again " + (wait > 0 ? "in " + wait + " s" : "shortly"));
  }
  if (response.status === 404 && gone) return new Error(gone);
  return new Error("HTTP " + response.status);
}
