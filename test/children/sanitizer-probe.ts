// Commits the deliberate bug named by argv[2] in the sanitized addon (native/test_hooks.cc).
import { native } from '../../lib/native';

native.sys.sanitizerProbe(process.argv[2]);
console.log('the probe returned: the sanitizer did not stop it');
