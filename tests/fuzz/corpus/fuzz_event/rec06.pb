	é=ŽÙWë€ ó](ó]b
idlebusyprompt