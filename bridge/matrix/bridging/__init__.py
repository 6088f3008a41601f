"""What the bridge means: Matrix events into domain changes and domain changes into Matrix."""
