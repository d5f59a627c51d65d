	;ŽÙWë€ ó](ó]B
killchild-3by user