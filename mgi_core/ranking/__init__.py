"""Item vectors, scorers (popularity, CF, content at each granularity), fusion, reasons."""
