// The JSON answer of a response, or null when it is not JSON (a proxy's HTML error page, a
// reset): the scripts' checks then report it.
export function answerOf(res) {
  try {
    return res.json();
  } catch {
    return null;
  }
}
