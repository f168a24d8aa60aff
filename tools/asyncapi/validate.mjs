// Validates an AsyncAPI document with the AsyncAPI project's parser (@asyncapi/parser,
// installed here by scripts/asyncapi-tools.sh), references to other files resolved.
// Prints one line per diagnostic and one verdict per file (valid: / invalid:); exits 1 if
// any document does not parse or has an error.
import { Parser, fromFile } from '@asyncapi/parser';

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node validate.mjs FILE...');
  process.exit(2);
}
const names = ['error', 'warning', 'info', 'hint'];
const parser = new Parser();
let invalid = 0;
for (const file of files) {
  const { document, diagnostics } = await fromFile(parser, file).parse();
  let errors = 0;
  for (const d of diagnostics) {
    if (d.severity === 0) errors++;
    console.log(`${file}: ${names[d.severity] ?? d.severity} ${d.code}: ${d.message} at /${(d.path || []).join('/')}`);
  }
  if (!document || errors > 0) {
    console.log(`${file}: invalid: ${errors} error(s)`);
    invalid++;
    continue;
  }
  console.log(`${file}: valid: AsyncAPI ${document.version()}, ${document.channels().length} channels, ` +
              `${document.operations().length} operations, ${document.components().messages().length} messages`);
}
process.exit(invalid > 0 ? 1 : 0);
