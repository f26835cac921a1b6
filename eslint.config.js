import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'data/', 'bench/results/', 'test-results/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', Buffer: 'readonly', fetch: 'readonly', performance: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': ['error', { allow: ['error', 'warn'] }],
    },
  },
  // The web pages run in browsers.
  { files: ['web/**'], languageOptions: { globals: globals.browser } },
  // Scripts print their results.
  { files: ['bench/**', 'scripts/**'], rules: { 'no-console': 'off' } },
  // Test bodies are parsed JSON of many shapes; assertions check them.
  { files: ['test/**'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
);
