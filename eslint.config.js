// Flat config: typed rules over sources and tests; package boundaries enforced here and in test/deps.test.ts.
import js from "@eslint/js";
import tseslint from "typescript-eslint";
import prettier from "eslint-config-prettier";

const pureBan = {
  paths: [
    "fs",
    "node:fs",
    "fs/promises",
    "node:fs/promises",
    "undici",
    "net",
    "node:net",
    "http",
    "node:http",
    "https",
    "node:https",
    "child_process",
    "node:child_process",
  ].map((name) => ({
    name,
    message: "This package is pure: no file system, network or processes.",
  })),
  patterns: [
    { group: ["@rkt/*/src/*", "../../*/src/*"], message: "Import a package by its name, not its src/." },
  ],
};

export default tseslint.config(
  {
    ignores: [
      "eslint.config.js",
      "**/dist/**",
      "**/node_modules/**",
      "**/test/fixtures/**",
      "packages/cli/bin/**",
      "packages/docker2aci/bin/**",
      "scripts/**/*.mjs",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { project: "./tsconfig.check.json", tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/switch-exhaustiveness-check": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-restricted-syntax": [
        "error",
        { selector: "ExportDefaultDeclaration", message: "Use named exports." },
      ],
      "no-restricted-imports": [
        "error",
        {
          patterns: [{ group: ["@rkt/*/src/*", "../../*/src/*"], message: "Import a package by its name." }],
        },
      ],
    },
  },
  {
    files: ["packages/oci/src/**", "packages/appc/src/**"],
    rules: { "no-restricted-imports": ["error", pureBan] },
  },
  {
    files: ["**/test/**", "test/**"],
    rules: {
      "@typescript-eslint/no-non-null-assertion": "off",
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-unsafe-member-access": "off",
    },
  },
  { files: ["vitest.config.ts"], rules: { "no-restricted-syntax": "off" } },
  prettier,
);
