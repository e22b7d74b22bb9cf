"""What people read: rich output, plain text, plots, graphs."""
