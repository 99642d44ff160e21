"""{{name}}: an eventplatform deployment."""
